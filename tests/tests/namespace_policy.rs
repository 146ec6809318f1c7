//! `spec.cluster.quota` and `spec.cluster.limitRange` against the real test cluster
//! (tests/cluster): `up` puts a ResourceQuota and a LimitRange in the namespace before
//! any pod, their defaults reach a pod that sets no limits, a workload or workspace
//! over the LimitRange's max fails at once with the API server's reason, and a key
//! removed from the config removes devenv's object.
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::time::{Duration, Instant};

use devenv_e2e::kube::{env_for, kc, kc_try};

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";

fn config(env: &str, quota: &str) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster:
    provider: kubeconfig
    {quota}
    limitRange:
      max: {{ memory: 64Mi }}
      default: {{ memory: 32Mi }}
      defaultRequest: {{ memory: 16Mi, cpu: 10m }}
  services:
    - name: small
      image: {BUSYBOX}
      command: "sleep 100000"
    - name: big
      image: {BUSYBOX}
      command: "sleep 100000"
      resources: {{ limits: {{ memory: 128Mi }} }}
  workspaces:
    - name: dev
      image: {BUSYBOX}
      resources: {{ limits: {{ memory: 128Mi }} }}
      volumes:
        - {{ name: workspace, size: 8Mi }}
        - {{ name: history, size: 8Mi }}
        - {{ name: config, size: 8Mi }}
"#
    )
}

const QUOTA: &str = r#"quota: { pods: "4", limits.memory: 512Mi }"#;

/// Removes the namespace whatever the test's outcome.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = kc_try(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_quota_and_limit_range_are_applied_and_enforced() {
    let (mut t, env) = env_for("quota");
    t.set_var("DEVENV_USER", "pat");
    let ns = format!("devenv-{env}");
    let _cleanup = Cleanup(ns.clone());
    t.write_config(&config(&env, QUOTA));

    t.devenv_ok(&["up", "small"]);
    let get =
        |what: &str, path: &str| kc(&["get", what, "-n", &ns, "-o", &format!("jsonpath={path}")]);
    assert_eq!(get("resourcequota/devenv-quota", "{.spec.hard.pods}"), "4");
    assert_eq!(
        get("resourcequota/devenv-quota", "{.spec.hard.limits\\.memory}"),
        "512Mi"
    );
    assert_eq!(
        get("limitrange/devenv-limits", "{.spec.limits[0].max.memory}"),
        "64Mi"
    );
    // The quota counts the pod, which got the LimitRange's default limit.
    assert_eq!(
        get("resourcequota/devenv-quota", "{.status.used.pods}"),
        "1"
    );
    let pod_limit = kc(&[
        "get",
        "pods",
        "-n",
        &ns,
        "-l",
        "devenv.dev/service=small",
        "-o",
        "jsonpath={.items[0].spec.containers[0].resources.limits.memory}",
    ]);
    assert_eq!(pod_limit, "32Mi");

    // Over the max: refused by the API server, and devenv says so, promptly.
    let started = Instant::now();
    let big = t.devenv(&["up", "big"]);
    let said = format!("{}{}", big.stdout, big.stderr);
    assert_eq!(big.code, Some(1), "{big}");
    assert!(said.contains("the cluster refused its pods"), "{big}");
    assert!(
        said.contains("maximum memory usage per Container is 64Mi, but limit is 128Mi"),
        "{big}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );

    let ws = t.devenv(&["workspace", "create", "dev"]);
    let said = format!("{}{}", ws.stdout, ws.stderr);
    assert_ne!(ws.code, Some(0), "{ws}");
    assert!(
        said.contains("workspace `dev`: the cluster refused its pod"),
        "{ws}"
    );
    assert!(
        said.contains("maximum memory usage per Container is 64Mi, but limit is 128Mi"),
        "{ws}"
    );
    t.devenv_ok(&["workspace", "delete", "dev", "--volumes"]);

    // The quota key removed: devenv's ResourceQuota goes at the next up; the
    // LimitRange stays.
    t.write_config(&config(&env, ""));
    t.devenv_ok(&["up", "small"]);
    let gone = kc_try(&["get", "resourcequota/devenv-quota", "-n", &ns]);
    assert!(!gone.status.success(), "quota still there");
    assert_eq!(
        get("limitrange/devenv-limits", "{.spec.limits[0].max.memory}"),
        "64Mi"
    );
    t.devenv_ok(&["down"]);
}
