//! Cluster errors that need no cluster: an API server that is not there. `up` fails
//! the kubernetes services with one line and a hint (local ones are unaffected), and
//! `down` says so and keeps the environment for a later retry.

use devenv_e2e::{free_ports, TestEnv};

fn dead_kubeconfig(t: &TestEnv) -> std::path::PathBuf {
    let port = free_ports(1)[0];
    let path = t.root().join("dead-kubeconfig");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster:
    server: https://127.0.0.1:{port}
    insecure-skip-tls-verify: true
contexts:
- name: dead
  context: {{ cluster: dead, user: dead }}
current-context: dead
users:
- name: dead
  user: {{ token: not-a-real-token }}
"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn unreachable_cluster_is_one_line_and_down_keeps_state() {
    let mut t = TestEnv::new();
    let kc = dead_kubeconfig(&t);
    t.set_var("KUBECONFIG", kc.display());
    t.write_config(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: deadcluster
spec:
  cluster: { provider: kubeconfig, context: dead }
  services:
    - name: local
      command: "echo local up; exec sleep 1000"
    - name: web
      image: devenv.test/busybox:1.35.0
"#,
    );
    let up = t.devenv(&["up", "--keep-going"]);
    assert_eq!(up.code, Some(1), "{up}");
    let why = "cannot reach the API server of context `dead`: connection refused (hint: is the cluster running? check with `devenv cluster status`)";
    assert!(up.stderr.contains(why), "{up}");
    // One line: no error chain, no transport stack.
    let line = up
        .stderr
        .lines()
        .find(|l| l.contains("cannot reach"))
        .unwrap();
    assert!(
        !line.contains("Caused by") && !line.contains("hyper"),
        "{line}"
    );
    assert!(
        !up.stderr.contains("not-a-real-token"),
        "the token leaked: {up}"
    );
    let states = t.states();
    assert_eq!(states["local"], "ready", "{states:?}");
    assert_eq!(states["web"], "failed", "{states:?}");

    let down = t.devenv(&["down"]);
    assert_eq!(down.code, Some(1), "{down}");
    assert!(down.stderr.contains("connection refused"), "{down}");
    assert!(down.stderr.contains("run `devenv down` again"), "{down}");
    // The environment is still known for the retry.
    let ls = t.devenv_ok(&["ls"]);
    assert!(ls.stdout.contains("deadcluster"), "{ls}");

    // A context missing from the kubeconfig is a one-line error too.
    t.write_config(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: deadcluster
spec:
  cluster: { provider: kubeconfig, context: nowhere }
  services:
    - name: web
      image: devenv.test/busybox:1.35.0
"#,
    );
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr.contains(
            "kubeconfig has no context `nowhere` (hint: set spec.cluster.context to one of: dead)"
        ),
        "{up}"
    );
}
