//! Hooks of a kubernetes service against the real test cluster (tests/cluster): an
//! `exec` hook runs in the service's pod with its output in `devenv logs`, and a host
//! hook gets the namespace and kubeconfig. Needs KUBECONFIG pointing at the test
//! cluster; run with `--ignored`.

use devenv_e2e::kube::{env_for, kc};

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_an_exec_hook_runs_in_the_services_pod() {
    let (t, env) = env_for("hooks");
    let ns = format!("devenv-{env}");
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  hooks:
    postUp: "env > hook-env.txt"
  services:
    - name: app
      image: {BUSYBOX}
      command: ["sleep", "100000"]
      hooks:
        postReady:
          - exec: "echo from-pod-$(hostname); touch /tmp/hooked"
            timeoutSeconds: 60
        preStop: {{ exec: ["sh", "-c", "echo stopping in the pod"] }}
"#
    ));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");

    // It ran in the pod: the file is there, and its output is in the hook's log.
    let pod = kc(&[
        "get",
        "pods",
        "-n",
        &ns,
        "-l",
        &format!("devenv.dev/environment={env},devenv.dev/service=app"),
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    kc(&["exec", "-n", &ns, &pod, "--", "test", "-f", "/tmp/hooked"]);
    let logs = t.devenv_ok(&["logs", "hook/app.postReady"]);
    assert!(logs.stdout.contains(&format!("from-pod-{pod}")), "{logs}");
    let status = t.status_json();
    let hook = status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "hook/app.postReady")
        .unwrap_or_else(|| panic!("no hook in status: {status}"));
    assert_eq!(hook["state"], "completed", "{hook}");

    // A host hook of an environment with a cluster gets its namespace and kubeconfig.
    let vars = std::fs::read_to_string(t.project.join("hook-env.txt")).expect("postUp ran");
    assert!(
        vars.lines().any(|l| l == format!("DEVENV_NAMESPACE={ns}")),
        "{vars}"
    );
    assert!(vars.lines().any(|l| l.starts_with("KUBECONFIG=")), "{vars}");

    t.devenv_ok(&["down"]);
    let logs = t.devenv_ok(&["logs", "hook/app.preStop"]);
    assert!(logs.stdout.contains("stopping in the pod"), "{logs}");
    t.teardown();
}
