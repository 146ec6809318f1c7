//! `devenv exec` into a kubernetes service's pod against the real test cluster
//! (tests/cluster): a terminal driven through a pseudo-terminal (size, resize, exit
//! code), exit codes without one, stdin, and the errors for a pod or container that
//! is not there.
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use devenv_e2e::kube::{env_for, kc};
use devenv_e2e::pty::Term;
use devenv_e2e::TestEnv;

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";

fn exec_cmd(t: &TestEnv, args: &[&str]) -> Command {
    let mut cmd = Command::new(&t.bins.devenv);
    cmd.args(args)
        .current_dir(&t.project)
        .env_clear()
        .envs(t.env_vars());
    cmd
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_exec_into_a_pod_with_a_terminal_resize_and_exit_codes() {
    let (t, env) = env_for("exec");
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
    - name: box
      image: {BUSYBOX}
      env: {{ GREETING: hello-from-pod }}
      command: exec sleep 100000
"#
    ));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");

    // Without a terminal: output, the container's env, the exit code.
    let out = t.devenv(&["exec", "box", "--", "sh", "-c", "echo $GREETING; exit 3"]);
    assert_eq!(out.code, Some(3), "exit code propagated\n{out}");
    assert_eq!(out.stdout, "hello-from-pod\n", "{out}");

    // stdin with -i, ended by end of input.
    let mut child = exec_cmd(&t, &["exec", "-i", "box", "--", "wc", "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn devenv exec -i");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a\nb\nc\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for devenv exec -i");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3", "{out:?}");

    // Errors: a container or pod that is not there.
    let no_container = t.devenv(&["exec", "box", "-c", "nope", "--", "true"]);
    assert_eq!(no_container.code, Some(2), "{no_container}");
    assert!(
        no_container.stderr.contains("no container `nope`")
            && no_container.stderr.contains("containers: box"),
        "{no_container}"
    );
    let no_pod = t.devenv(&["exec", "box", "--pod", "nope", "--", "true"]);
    assert_eq!(no_pod.code, Some(2), "{no_pod}");
    assert!(no_pod.stderr.contains("`nope`"), "{no_pod}");

    // A terminal: size, resize, and the exit code of what ends it.
    let cmd = exec_cmd(&t, &["exec", "-i", "-t", "box", "--", "sh"]);
    let (mut term, mut client) = Term::spawn(cmd, 30, 100);
    let limit = Duration::from_secs(30);
    term.type_in(b"stty size\r");
    let at = term.expect(0, "30 100", limit);
    let at = term.resize_until_seen(&client, at, 41, 123, limit);
    term.type_in(b"echo in-$((40+2)); exit 3\r");
    term.expect(at, "in-42", limit);
    assert_eq!(
        term.wait_exit(&mut client, limit),
        Some(3),
        "{}",
        term.seen()
    );

    t.devenv_ok(&["down"]);
}

/// A service pointed at a workload devenv did not create (`workload:`), whose pods
/// carry only their own labels (`app: shelf`, none of devenv's): `devenv exec` and an
/// `exec` hook find its pod through the Deployment's `spec.selector.matchLabels`, as
/// readiness and logs do. (A `manifests` service would not do: devenv labels the pod
/// templates it applies.)
#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_exec_and_exec_hooks_reach_a_foreign_workloads_own_pods() {
    let (t, env) = env_for("exec-foreign");
    let ns = format!("foreign-{env}");
    kc(&["create", "namespace", &ns]);
    let manifest = t.root().join("shelf.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: shelf
spec:
  replicas: 1
  selector:
    matchLabels: {{ app: shelf }}
  template:
    metadata:
      labels: {{ app: shelf }}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: {BUSYBOX}
          imagePullPolicy: IfNotPresent
          env: [{{ name: SHELF, value: from-the-manifest }}]
          command: ["sh", "-c", "exec sleep 100000"]
"#
        ),
    )
    .expect("write the manifest");
    kc(&["apply", "-n", &ns, "-f", manifest.to_str().expect("utf-8")]);
    kc(&[
        "rollout",
        "status",
        "deployment/shelf",
        "-n",
        &ns,
        "--timeout=120s",
    ]);
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig, namespace: {ns} }}
  services:
    - name: shelf
      workload: deployment/shelf
      hooks:
        postReady: {{ exec: "echo hooked > /tmp/hooked" }}
"#
    ));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");

    // The pod is not devenv's: nothing carries devenv's labels, so whatever finds
    // it below found it by the workload's selector.
    let by_devenv = kc(&[
        "get",
        "pods",
        "-n",
        &ns,
        "-l",
        "app.kubernetes.io/managed-by=devenv",
        "-o",
        "name",
    ]);
    assert!(
        !by_devenv.contains("shelf"),
        "the workload's pod carries devenv's labels, so this test proves nothing: {by_devenv}"
    );

    // The hook ran in the pod: its log names it, and the file it wrote is there.
    let hook = t.devenv_ok(&["logs", "hook/shelf.postReady"]);
    assert!(
        hook.stdout.contains("in pod shelf-") && hook.stdout.contains("(container main)"),
        "{hook}"
    );
    let out = t.devenv(&[
        "exec",
        "shelf",
        "--",
        "sh",
        "-c",
        "echo $SHELF; cat /tmp/hooked; exit 4",
    ]);
    assert_eq!(out.code, Some(4), "exit code propagated\n{out}");
    assert_eq!(out.stdout, "from-the-manifest\nhooked\n", "{out}");
    t.devenv_ok(&["down"]);
    kc(&["delete", "namespace", &ns, "--wait=false"]);
}
