//! `devenv snapshot` of a persistent volume claim on the real test cluster
//! (tests/cluster): a kubernetes service's volume with files is saved through the
//! helper pod (the service scaled to 0 for the copy), saved again unchanged (the
//! store grows by less than 1 % and the data set is taken over from the first), modified,
//! and restored: the old content is back, what was added after is gone. An unchanged
//! re-save does not scale the service down; a change after it forces the copy.
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::path::Path;

use devenv_e2e::kube::{env_for, kc};
use serde_json::Value;

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// The `{"done": ..}` line of a `--json` save or restore.
fn done(out: &str) -> Value {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("done").cloned())
        .unwrap_or_else(|| panic!("no done line in {out}"))
}

fn in_web(ns: &str, script: &str) -> String {
    kc(&["exec", "-n", ns, "deploy/web", "--", "sh", "-c", script])
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_a_claim_round_trips_through_a_snapshot_and_an_unchanged_resave_costs_almost_nothing() {
    let (t, env) = env_for("snappvc");
    let ns = format!("devenv-{env}");
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig, snapshotImage: "{BUSYBOX}" }}
  volumes:
    - {{ name: data, type: persistent, size: 64Mi }}
  services:
    - name: web
      image: {BUSYBOX}
      command: "sleep 100000"
      volumes: ["data:/data"]
"#
    ));
    t.devenv_ok(&["up"]);
    in_web(
        &ns,
        "echo before > /data/f && mkdir -p /data/sub && head -c 3000000 /dev/urandom > /data/sub/big \
         && ln -s f /data/link && chmod 600 /data/f",
    );
    let big_sum = in_web(&ns, "md5sum /data/sub/big");

    let out = t.devenv_ok(&["--json", "snapshot", "save", "one"]).stdout;
    let first = done(&out);
    assert!(
        out.contains("pvc/data: web scaled to 0 for the copy"),
        "the user is told: {out}"
    );
    assert!(
        out.contains("no VolumeSnapshotClass"),
        "the test cluster has none: {out}"
    );
    assert!(first["bytes"].as_u64().unwrap() >= 3_000_000, "{first}");
    assert_eq!(
        in_web(&ns, "cat /data/f").trim(),
        "before",
        "web is back after the copy"
    );

    // Nothing changed: the files are taken from the first record, the store barely grows.
    let chunks = t.data_dir.join("snapshots/chunks");
    let before = dir_size(&chunks);
    let out = t.devenv_ok(&["--json", "snapshot", "save", "two"]).stdout;
    let after = dir_size(&chunks);
    assert!(
        (after - before) * 100 < before,
        "an unchanged re-save added {} bytes to {before}: {out}",
        after - before
    );
    assert!(
        out.contains("pvc/data: unchanged since snapshot one"),
        "taken over without a copy: {out}"
    );
    let second = done(&out);
    assert_eq!(second["bytes"], first["bytes"], "{second}");

    // Change it, then restore the first snapshot.
    in_web(
        &ns,
        "echo after > /data/f && rm /data/sub/big && echo new > /data/added",
    );
    let diff = t.devenv_ok(&["snapshot", "diff", "one"]).stdout;
    assert!(diff.contains("added") || diff.contains("+"), "{diff}");
    let out = t
        .devenv_ok(&["--json", "snapshot", "restore", "one"])
        .stdout;
    done(&out);
    assert_eq!(in_web(&ns, "cat /data/f").trim(), "before");
    assert_eq!(in_web(&ns, "md5sum /data/sub/big"), big_sum);
    assert_eq!(in_web(&ns, "readlink /data/link").trim(), "f");
    assert_eq!(in_web(&ns, "stat -c %a /data/f").trim(), "600");
    assert_eq!(
        in_web(&ns, "ls -A /data")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["f", "link", "sub"],
        "what was added after is gone, no staging dir is left"
    );
    let helpers = kc(&["get", "pods", "-n", &ns, "-o", "name"]);
    assert!(
        !helpers.contains("devenv-snap-"),
        "helper pods are removed: {helpers}"
    );
    t.devenv_ok(&["down", "--volumes"]);
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_an_unchanged_claim_is_saved_without_scaling_down_and_a_change_forces_the_copy() {
    let (t, env) = env_for("snapfast");
    let ns = format!("devenv-{env}");
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig, snapshotImage: "{BUSYBOX}" }}
  volumes:
    - {{ name: data, type: persistent, size: 64Mi }}
  services:
    - name: web
      image: {BUSYBOX}
      command: "sleep 100000"
      volumes: ["data:/data"]
"#
    ));
    t.devenv_ok(&["up"]);
    in_web(
        &ns,
        "echo v1 > /data/f && mkdir -p /data/sub && head -c 1000000 /dev/urandom > /data/sub/big",
    );
    let pod = || {
        kc(&[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "devenv.dev/service=web",
            "-o",
            "name",
        ])
    };

    let one = t.devenv_ok(&["--json", "snapshot", "save", "one"]).stdout;
    assert!(
        one.contains("pvc/data: web scaled to 0 for the copy"),
        "{one}"
    );
    let running = pod();

    // Nothing changed: taken over without scaling web down (the same pod runs).
    let two = t.devenv_ok(&["--json", "snapshot", "save", "two"]).stdout;
    assert!(
        two.contains("pvc/data: unchanged since snapshot one"),
        "{two}"
    );
    assert!(!two.contains("scaled to 0"), "{two}");
    assert_eq!(pod(), running, "web was not scaled down");
    assert_eq!(done(&two)["bytes"], done(&one)["bytes"]);

    // A change after that listing (same size): the full copy again, with the change.
    in_web(&ns, "echo v2 > /data/f");
    let three = t.devenv_ok(&["--json", "snapshot", "save", "three"]).stdout;
    assert!(
        three.contains("pvc/data: web scaled to 0 for the copy"),
        "{three}"
    );
    assert!(!three.contains("unchanged since"), "{three}");
    in_web(&ns, "echo v3 > /data/f");
    t.devenv_ok(&["snapshot", "restore", "three"]);
    assert_eq!(in_web(&ns, "cat /data/f").trim(), "v2");
    let helpers = kc(&["get", "pods", "-n", &ns, "-o", "name"]);
    assert!(
        !helpers.contains("devenv-snap-"),
        "helper pods are removed: {helpers}"
    );
    t.devenv_ok(&["down", "--volumes"]);
}
