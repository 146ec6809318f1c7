//! `devenv scale` and `devenv stop`/`start` of a kubernetes service against the real
//! test cluster (tests/cluster): 1 -> 3 -> 1 replicas with status showing desired and
//! ready, stop taking the workload to 0 and start putting it back.
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::time::Duration;

use devenv_e2e::kube::{env_for, kc};
use devenv_e2e::{wait_until, TestEnv};
use serde_json::Value;

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";

fn config(env: &str) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
    - name: web
      image: {BUSYBOX}
      command: "sleep 100000"
"#
    )
}

fn web(t: &TestEnv) -> Value {
    let st = t.status_json();
    st["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "web")
        .cloned()
        .unwrap_or_else(|| panic!("no web in {st}"))
}

/// `.status.readyReplicas` and `.spec.replicas` of the Deployment.
fn deployment(ns: &str) -> (String, String) {
    let get = |path: &str| kc(&["get", "deployment", "web", "-n", ns, "-o", path]);
    (
        get("jsonpath={.spec.replicas}"),
        get("jsonpath={.status.readyReplicas}"),
    )
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_scale_one_three_one_and_stop_start() {
    let (t, env) = env_for("scale");
    let ns = format!("devenv-{env}");
    t.write_config(&config(&env));
    t.devenv_ok(&["up"]);
    assert_eq!(deployment(&ns), ("1".into(), "1".into()));
    assert!(web(&t)["replicas"].is_null(), "not scaled yet: {}", web(&t));

    for n in [3u32, 1] {
        let out = t.devenv_ok(&["--json", "scale", "web", &n.to_string()]);
        let reply: Value = serde_json::from_str(&out.stdout).expect("scale --json");
        let svc = &reply["services"][0];
        assert_eq!(svc["replicas"]["desired"], n, "{reply}");
        assert_eq!(
            svc["replicas"]["ready"], n,
            "ready when scale returns: {reply}"
        );
        assert_eq!(deployment(&ns), (n.to_string(), n.to_string()));
        let w = web(&t);
        assert_eq!(w["state"], "ready", "{w}");
        assert_eq!(w["replicas"]["desired"], n, "{w}");
        let table = t.devenv_ok(&["status"]).stdout;
        assert!(table.contains(&format!("replicas {n}/{n}")), "{table}");
    }

    // Stop takes the workload to no pods; start brings back the scale asked for.
    t.devenv_ok(&["scale", "web", "2"]);
    t.devenv_ok(&["stop", "web"]);
    assert_eq!(web(&t)["state"], "stopped");
    assert!(
        wait_until(Duration::from_secs(60), || deployment(&ns).0 == "0"),
        "{:?}",
        deployment(&ns)
    );
    t.devenv_ok(&["start", "web"]);
    assert_eq!(deployment(&ns), ("2".into(), "2".into()));
    assert_eq!(web(&t)["state"], "ready");
    t.devenv_ok(&["down"]);
}
