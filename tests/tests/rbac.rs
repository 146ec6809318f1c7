//! devenv with only the minimal Role of examples/rbac/developer-role.yaml, on the real
//! test cluster (tests/cluster): an admin makes a namespace, a ServiceAccount bound to
//! that Role alone, and a token for it (TokenRequest API, `kubectl create token`); with
//! a kubeconfig holding only that token, `up` of a kubernetes service, `workspace
//! create`, a shell in it, `stop`, `start`, `delete` and `down` work. With one verb
//! taken out of the Role, devenv names exactly the permission that is missing.
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use devenv_e2e::kube::{kc, kc_try, kubeconfig, kubectl};
use devenv_e2e::pty::Term;
use devenv_e2e::TestEnv;

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";
const ROLE: &str = include_str!("../../examples/rbac/developer-role.yaml");

fn config(env: &str, ns: &str) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig, namespace: {ns} }}
  services:
    - name: web
      image: {BUSYBOX}
      command: "sleep 100000"
  workspaces:
    - name: dev
      image: {BUSYBOX}
      volumes:
        - {{ name: workspace, size: 8Mi }}
        - {{ name: history, size: 8Mi }}
        - {{ name: config, size: 8Mi }}
"#
    )
}

/// Removes the namespace whatever the test's outcome.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = kc_try(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

/// Runs kubectl as the admin with `stdin`.
fn kc_stdin(args: &[&str], stdin: &str) {
    use std::io::Write;
    let mut child = Command::new(kubectl())
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace, a ServiceAccount `dev` bound to the Role `role` (YAML) alone, and
/// a kubeconfig at `dir` whose only credential is a token made for it.
fn developer(ns: &str, role: &str, dir: &Path) -> PathBuf {
    kc(&["create", "namespace", ns]);
    kc(&["create", "serviceaccount", "dev", "-n", ns]);
    kc_stdin(&["apply", "-n", ns, "-f", "-"], role);
    kc(&[
        "create",
        "rolebinding",
        "dev-devenv",
        "--role=devenv-developer",
        &format!("--serviceaccount={ns}:dev"),
        "-n",
        ns,
    ]);
    let token = kc(&["create", "token", "dev", "-n", ns, "--duration=1h"]);
    let cluster = |path: &str| {
        kc(&[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            &format!("jsonpath={{.clusters[0].cluster.{path}}}"),
        ])
    };
    let server = cluster("server");
    let ca = match cluster("certificate-authority-data") {
        data if !data.is_empty() => format!("certificate-authority-data: {data}"),
        _ => format!(
            "certificate-authority: {}",
            cluster("certificate-authority")
        ),
    };
    let path = dir.join("dev.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    {ca}\nusers:\n- name: dev\n  user:\n    token: {}\ncontexts:\n- name: dev\n  context: {{ cluster: test, user: dev, namespace: {ns} }}\ncurrent-context: dev\n",
            token.trim()
        ),
    )
    .unwrap();
    path
}

fn dev_env(ns: &str, role: &str) -> (TestEnv, String) {
    let mut t = TestEnv::new();
    let kubeconfig = developer(ns, role, t.root());
    t.set_var("KUBECONFIG", kubeconfig.to_str().unwrap());
    t.set_var("DEVENV_USER", "pat");
    let env = ns.to_owned();
    t.write_config(&config(&env, ns));
    (t, env)
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_the_minimal_role_is_enough_for_up_and_workspaces() {
    let ns = format!("rbac-ok-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    let (t, _env) = dev_env(&ns, ROLE);
    // The token really is that narrow: no cluster scope, nothing in another namespace.
    let kcfg = t.root().join("dev.kubeconfig");
    let as_dev = |args: &[&str]| {
        Command::new(kubectl())
            .args(args)
            .env("KUBECONFIG", &kcfg)
            .output()
            .unwrap()
    };
    assert!(!as_dev(&["get", "namespaces"]).status.success());
    assert!(!as_dev(&["get", "pods", "-n", "default"]).status.success());

    t.devenv_ok(&["up", "web"]);
    let st = t.status_json();
    assert_eq!(st["services"][0]["state"], "ready", "{st}");
    t.devenv_ok(&["logs", "web", "--tail", "5"]);

    let created = t.devenv_ok(&["--json", "workspace", "create", "dev"]);
    assert!(created.stdout.contains("\"running\""), "{created}");
    // A shell in it, on a terminal.
    let mut cmd = Command::new(&t.bins.devenv);
    cmd.args(["workspace", "shell", "dev"])
        .current_dir(&t.project)
        .env_clear()
        .envs(t.env_vars());
    let (mut term, mut client) = Term::spawn(cmd, 30, 100);
    let limit = Duration::from_secs(60);
    term.type_in(b"echo uid-$(id -u)-$((40+2)); exit 7\r");
    term.expect(0, "uid-1000-42", limit);
    assert_eq!(
        term.wait_exit(&mut client, limit),
        Some(7),
        "{}",
        term.seen()
    );

    let stopped = t.devenv_ok(&["--json", "workspace", "stop", "dev"]);
    assert!(stopped.stdout.contains("\"stopped\""), "{stopped}");
    t.devenv_ok(&["workspace", "start", "dev"]);
    t.devenv_ok(&["workspace", "ls"]);
    t.devenv_ok(&["workspace", "delete", "dev", "--volumes"]);
    t.devenv_ok(&["down"]);
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_a_verb_missing_from_the_role_is_named() {
    let ns = format!("rbac-short-{}", std::process::id());
    let _cleanup = Cleanup(ns.clone());
    // The workloads' rule without `create`.
    let short = ROLE.replacen(
        r#"verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]"#,
        r#"verbs: ["get", "list", "watch", "patch", "update", "delete"]"#,
        1,
    );
    assert_ne!(
        short, ROLE,
        "the Role's workloads rule changed: update this test"
    );
    let (t, _env) = dev_env(&ns, &short);

    let ws = t.devenv(&["workspace", "create", "dev"]);
    assert_eq!(ws.code, Some(1), "{ws}");
    let want = format!(
        "forbidden: cannot create statefulsets.apps in namespace {ns}: the Role needs verb create on statefulsets (apiGroup apps)"
    );
    assert!(ws.stderr.contains(&want), "want `{want}` in\n{ws}");
    assert!(ws.stderr.contains("docs/rbac.md"), "{ws}");

    let up = t.devenv(&["up", "web"]);
    let said = format!("{}{}", up.stdout, up.stderr);
    assert_eq!(up.code, Some(1), "{up}");
    let want = format!(
        "forbidden: cannot create deployments.apps in namespace {ns}: the Role needs verb create on deployments (apiGroup apps)"
    );
    assert!(said.contains(&want), "want `{want}` in\n{up}");
}
