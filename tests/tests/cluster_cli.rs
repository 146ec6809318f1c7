//! `devenv cluster ...` and `devenv forward ls` with the real binaries.
//!
//! k3d needs a Docker engine, which the test machine does not have, so no test here
//! runs k3d. What is real: the daemon looking k3d and docker up on the client's PATH,
//! the "not installed" and "needs a running Docker engine" errors (the latter from the
//! real docker client talking to no engine), the API-server check against a closed
//! port, and the state record. What is a fake: a `k3d` script that records its
//! arguments, which checks the command lines devenv builds from the config, not that
//! a cluster comes up.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use devenv_e2e::{free_ports, CmdOutput, RunOpts, TestEnv};
use serde_json::Value;

const K3D_CONFIG: &str = r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: shop
spec:
  cluster:
    provider: k3d
    name: shop-local
    k3d:
      agents: 2
      ports: ["8080:80@loadbalancer", "8443:443@loadbalancer"]
  services:
    - name: api
      command: sleep 1000
"#;

/// The same without name, agents or ports: k3d's defaults as devenv passes them.
const K3D_DEFAULTS: &str = r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: blog
spec:
  cluster: { provider: k3d }
  services:
    - name: api
      command: sleep 1000
"#;

const LOCAL_ONLY: &str = r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: plain
spec:
  services:
    - name: api
      command: sleep 1000
"#;

/// A started daemon (with the normal PATH) and a project with `config`.
fn env_with(config: &str) -> TestEnv {
    let env = TestEnv::new();
    env.write_config(config);
    env.devenv_ok(&["daemon", "start"]);
    env
}

/// A directory of fake tools under the env's root.
fn bin_dir(env: &TestEnv, name: &str) -> PathBuf {
    let dir = env.root().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir bin dir");
    dir
}

fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A `k3d` that appends each invocation's arguments to `argv` (one per line, then
/// `--`) and prints what k3d would. Shell builtins only: it works with any PATH.
fn recording_k3d(dir: &Path, argv: &Path) {
    let log = argv.display();
    script(
        dir,
        "k3d",
        &format!(
            r#"for a in "$@"; do printf '%s\n' "$a" >> '{log}'; done
printf -- '--\n' >> '{log}'
case "$1 $2" in
  "cluster list") printf '[]\n' ;;
  "cluster create") printf "INFO[0000] Prep: Network\nINFO[0004] Cluster '%s' created successfully!\n" "$3" ;;
  "cluster delete") printf "INFO[0000] Deleting cluster '%s'\nINFO[0001] Successfully deleted cluster %s!\n" "$3" "$3" ;;
esac"#
        ),
    );
}

/// A `docker` whose engine answers `docker info`.
fn answering_docker(dir: &Path) {
    script(
        dir,
        "docker",
        r#"case "$1" in info) echo 27.0.0-fake ;; *) exit 1 ;; esac"#,
    );
}

/// The invocations recorded by [`recording_k3d`].
fn invocations(argv: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(argv).unwrap_or_default();
    let mut all = Vec::new();
    let mut cur = Vec::new();
    for line in text.lines() {
        if line == "--" {
            all.push(std::mem::take(&mut cur));
        } else {
            cur.push(line.to_owned());
        }
    }
    all
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn with_path(env: &TestEnv, path: &str, args: &[&str]) -> CmdOutput {
    with_vars(env, &[("PATH", path)], args)
}

fn with_vars(env: &TestEnv, vars: &[(&str, &str)], args: &[&str]) -> CmdOutput {
    let opts = RunOpts {
        env: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..RunOpts::default()
    };
    env.run(&env.bins.devenv, args, opts)
}

fn json(out: &CmdOutput) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{out}"))
}

/// One `error: ...` line, and nothing after it (no stack, no wrapped causes). A
/// progress line may come before it when stderr is not a terminal.
fn assert_one_line_error(out: &CmdOutput) {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let errors = lines.iter().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(errors, 1, "expected one error line\n{out}");
    assert!(
        lines.last().is_some_and(|l| l.starts_with("error: ")),
        "nothing may follow the error line\n{out}"
    );
}

#[test]
fn create_without_k3d_says_how_to_get_it() {
    let env = env_with(K3D_CONFIG);
    let empty = bin_dir(&env, "empty");
    let out = with_path(&env, &empty.display().to_string(), &["cluster", "create"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert_one_line_error(&out);
    for want in [
        "k3d is not installed",
        "https://k3d.io",
        "go install github.com/k3d-io/k3d/v5@latest",
    ] {
        assert!(out.stderr.contains(want), "stderr lacks {want:?}\n{out}");
    }
    let ls = json(&env.devenv_ok(&["cluster", "ls", "--json"]));
    assert_eq!(ls, serde_json::json!({ "clusters": [] }));
}

/// Honest about what it checks: the k3d here is a script that records its argv, so
/// this proves the command lines devenv builds from the config (name, agents,
/// ports, flags) and what devenv records, not that k3d creates a cluster.
#[test]
fn create_and_delete_run_the_k3d_commands_built_from_the_config() {
    let env = env_with(K3D_CONFIG);
    let bin = bin_dir(&env, "fakebin");
    let argv = env.root().join("k3d-argv");
    recording_k3d(&bin, &argv);
    answering_docker(&bin);
    let path = bin.display().to_string();

    let out = with_path(&env, &path, &["cluster", "create", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        invocations(&argv),
        vec![
            words("cluster list -o json"),
            words(
                "cluster create shop-local --agents 2 --port 8080:80@loadbalancer \
                 --port 8443:443@loadbalancer --wait --kubeconfig-update-default \
                 --kubeconfig-switch-context=false"
            ),
        ],
        "{out}"
    );
    let created = json(&out);
    assert_eq!(created["cluster"]["name"], "shop-local", "{out}");
    assert_eq!(created["cluster"]["provider"], "k3d");
    assert_eq!(created["cluster"]["context"], "k3d-shop-local");
    assert_eq!(created["cluster"]["namespace"], "devenv-shop");
    assert!(
        created["output"]
            .as_str()
            .is_some_and(|o| o.contains("Cluster 'shop-local' created successfully")),
        "k3d's output is passed on\n{out}"
    );
    // No kubeconfig was written by the fake: the check after creating says so.
    assert_eq!(created["cluster"]["reachable"], false, "{out}");

    let ls = json(&env.devenv_ok(&["cluster", "ls", "--json"]));
    let clusters = ls["clusters"].as_array().expect("clusters array");
    assert_eq!(clusters.len(), 1, "{ls:#}");
    let c = &clusters[0];
    assert_eq!(c["name"], "shop-local");
    assert_eq!(c["context"], "k3d-shop-local");
    let project = std::fs::canonicalize(&env.project).expect("canonical project");
    assert_eq!(c["project"], project.display().to_string().as_str());
    assert!(c["created"].is_string(), "{ls:#}");
    let table = env.devenv_ok(&["cluster", "ls"]);
    let row = table.stdout.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with("shop-local  k3d"), "{table}");

    let out = with_path(&env, &path, &["cluster", "delete"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        invocations(&argv).last(),
        Some(&words("cluster delete shop-local")),
        "{out}"
    );
    assert!(
        out.stdout.contains("deleted k3d cluster `shop-local`"),
        "{out}"
    );
    let ls = json(&env.devenv_ok(&["cluster", "ls", "--json"]));
    assert_eq!(ls, serde_json::json!({ "clusters": [] }));

    // Defaults: name `devenv`, no agents, no ports.
    std::fs::write(env.project.join(".devenv/blog.yml"), K3D_DEFAULTS).expect("write config");
    std::fs::remove_file(&argv).expect("reset argv");
    let out = with_path(
        &env,
        &path,
        &["cluster", "create", "-f", ".devenv/blog.yml"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        invocations(&argv).last(),
        Some(&words(
            "cluster create devenv --agents 0 --wait --kubeconfig-update-default \
             --kubeconfig-switch-context=false"
        )),
        "{out}"
    );
}

#[test]
fn create_without_docker_needs_a_docker_engine() {
    let env = env_with(K3D_CONFIG);
    let bin = bin_dir(&env, "fakebin");
    let argv = env.root().join("k3d-argv");
    recording_k3d(&bin, &argv);
    // Only the fake k3d on PATH: no docker at all.
    let out = with_path(&env, &bin.display().to_string(), &["cluster", "create"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert_one_line_error(&out);
    assert!(
        out.stderr
            .contains("k3d needs a running Docker engine: `docker` is not on PATH"),
        "{out}"
    );
    assert!(out.stderr.contains("docs.docker.com"), "hint\n{out}");
    assert!(
        invocations(&argv).is_empty(),
        "k3d must not run without Docker"
    );
}

#[test]
fn create_with_a_docker_client_but_no_engine_needs_a_docker_engine() {
    let env = env_with(K3D_CONFIG);
    let bin = bin_dir(&env, "fakebin");
    let argv = env.root().join("k3d-argv");
    recording_k3d(&bin, &argv);
    // The real docker client, pointed at a socket nothing listens on.
    let host_path = std::env::var("PATH").unwrap_or_default();
    let docker_dir = std::env::split_paths(&host_path)
        .find(|d| d.join("docker").is_file())
        .expect("this test needs a docker client on PATH (it talks to no engine on purpose)");
    let path = format!("{}:{}", bin.display(), docker_dir.display());
    let out = with_vars(
        &env,
        &[
            ("PATH", &path),
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ],
        &["cluster", "create"],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert_one_line_error(&out);
    assert!(
        out.stderr.contains(
            "k3d needs a running Docker engine: Cannot connect to the Docker daemon at unix:///nonexistent/docker.sock"
        ),
        "{out}"
    );
    assert!(
        invocations(&argv).is_empty(),
        "k3d must not run without Docker"
    );
}

#[test]
fn status_of_a_cluster_on_a_closed_port_is_one_line_with_a_hint() {
    let env = env_with(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: shop
spec:
  cluster: { provider: kubeconfig, context: dead }
  services:
    - name: api
      command: sleep 1000
"#,
    );
    // Bound and released: nothing listens there now.
    let port = free_ports(1)[0];
    let kubeconfig = env.root().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: dead\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
             contexts:\n- name: dead\n  context: {{ cluster: dead, user: dead }}\n\
             current-context: dead\n\
             users:\n- name: dead\n  user: {{ token: not-a-secret }}\n"
        ),
    )
    .expect("write kubeconfig");
    let kc = kubeconfig.display().to_string();
    let vars = [("KUBECONFIG", kc.as_str())];
    let want = "cannot reach the API server of context `dead`: connection refused \
                (hint: is the cluster running? check with `devenv cluster status`)";

    let out = with_vars(&env, &vars, &["cluster", "status", "--json"]);
    assert_eq!(out.code, Some(1), "unreachable exits 1\n{out}");
    let v = json(&out);
    let c = &v["cluster"];
    assert_eq!(c["reachable"], false, "{out}");
    assert_eq!(c["provider"], "kubeconfig");
    assert_eq!(c["context"], "dead");
    assert_eq!(c["namespace"], "devenv-shop");
    assert_eq!(c["message"], want, "{out}");
    assert!(out.stderr.is_empty(), "{out}");

    let out = with_vars(&env, &vars, &["cluster", "status"]);
    assert_eq!(out.code, Some(1), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row, no stack\n{out}");
    assert!(lines[1].contains("  no  "), "{out}");
    assert!(lines[1].ends_with(want), "{out}");
    assert!(out.stderr.is_empty(), "{out}");
}

#[test]
fn cluster_commands_need_a_cluster_in_the_config() {
    let env = env_with(LOCAL_ONLY);
    for cmd in ["status", "create", "delete"] {
        let out = env.devenv(&["cluster", cmd]);
        assert_eq!(out.code, Some(2), "a config problem exits 2\n{out}");
        assert_one_line_error(&out);
        assert!(
            out.stderr.contains("this environment has no spec.cluster"),
            "{out}"
        );
    }
}

#[test]
fn forward_ls_without_kubernetes_services_is_empty() {
    let env = env_with(LOCAL_ONLY);
    let out = env.devenv_ok(&["forward", "ls", "--json"]);
    assert_eq!(json(&out), serde_json::json!({ "forwards": [] }));
    let out = env.devenv_ok(&["forward", "ls"]);
    assert!(out.stdout.starts_with("no port forwards"), "{out}");
    let out = env.devenv_ok(&["forward", "ls", "-q"]);
    assert!(out.stdout.is_empty(), "{out}");
}
