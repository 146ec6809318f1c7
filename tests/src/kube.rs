//! Helpers for the tests that need the test cluster (tests/cluster): its kubeconfig,
//! kubectl against it, and what devenv left labelled there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::TestEnv;

pub fn kubeconfig() -> String {
    match std::env::var("KUBECONFIG") {
        Ok(k) if !k.is_empty() && Path::new(&k).exists() => k,
        _ => panic!(
            "KUBECONFIG must point at the test cluster: run `bash tests/cluster/up.sh` and export the KUBECONFIG it prints (tests/cluster/test.sh does both)"
        ),
    }
}

pub fn kubectl() -> PathBuf {
    let state = std::env::var("DEVENV_CLUSTER_STATE")
        .unwrap_or_else(|_| "/var/tmp/devenv-test-cluster".into());
    let local = PathBuf::from(state).join("bin/kubectl");
    if local.exists() {
        return local;
    }
    PathBuf::from("kubectl")
}

/// Runs kubectl against the test cluster, whatever its outcome.
pub fn kc_try(args: &[&str]) -> Output {
    Command::new(kubectl())
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .output()
        .expect("run kubectl")
}

/// Runs kubectl against the test cluster; returns stdout (panics on failure).
pub fn kc(args: &[&str]) -> String {
    let out = kc_try(args);
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every object labelled as devenv's environment `env`, as `kind/name` lines.
pub fn labelled(env: &str) -> Vec<String> {
    kc(&[
        "get",
        "deployments,statefulsets,services,configmaps,secrets,pvc,pods",
        "--all-namespaces",
        "-l",
        &format!("app.kubernetes.io/managed-by=devenv,devenv.dev/environment={env}"),
        "-o",
        "name",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

pub fn namespace_exists(ns: &str) -> bool {
    kc_try(&["get", "namespace", ns, "-o", "name"])
        .status
        .success()
}

/// A test env with KUBECONFIG set, and an environment name unique to this run.
pub fn env_for(name: &str) -> (TestEnv, String) {
    let mut t = TestEnv::new();
    t.set_var("KUBECONFIG", kubeconfig());
    // A namespace per test run, so runs never meet.
    let env = format!("{name}-{}", std::process::id());
    (t, env)
}
