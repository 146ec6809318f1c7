//! bench-workspaces: 20 small workspaces on the test cluster, one per user, in one
//! namespace: create -> shell-ready and start-from-stopped (median, p99), the volumes'
//! usage from the kubelet's stats summary, then everything removed.
//!
//! ```sh
//! eval "$(bash tests/cluster/up.sh)"
//! cargo run -p devenv-e2e --bin bench-workspaces -- [--workspaces N]
//! ```
//!
//! Each workspace is created (and later started) by its own user (`DEVENV_USER=uN`)
//! one after another, as people arrive; "shell-ready" is the moment a `devenv
//! workspace exec dev -- true` first exits 0 after the command began, so it includes
//! the pod's scheduling, its three volumes' provisioning and the exec round trip.
//! The binaries are the bench's own build (debug or release). See docs/benchmarks.md.

use std::process::Command;
use std::time::{Duration, Instant};

use devenv_e2e::bench::{positive_arg, print_table, Sample};
use devenv_e2e::kube::kubectl;
use devenv_e2e::{Bins, Profile, TestEnv};
use serde_json::Value;

const IMAGE: &str = "devenv.test/busybox:1.35.0";

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("bench-workspaces: {err}");
    }
    eprintln!("usage: bench-workspaces [--workspaces N]   (needs KUBECONFIG: tests/cluster/up.sh)");
    std::process::exit(if err.is_empty() { 0 } else { 2 });
}

fn kc(kubeconfig: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(kubectl())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn config(ns: &str) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: benchws
spec:
  cluster: {{ provider: kubeconfig, namespace: {ns} }}
  workspaces:
    - name: dev
      image: {IMAGE}
      resources: {{ requests: {{ cpu: 5m, memory: 8Mi }}, limits: {{ memory: 32Mi }} }}
      volumes:
        - {{ name: workspace, size: 16Mi }}
        - {{ name: history, size: 8Mi }}
        - {{ name: config, size: 8Mi }}
"#
    )
}

/// Removes the namespace whatever happens (not timed).
struct Cleanup<'a>(&'a str, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        eprintln!("bench-workspaces: deleting namespace {}", self.1);
        let _ = kc(
            self.0,
            &[
                "delete",
                "namespace",
                self.1,
                "--wait=true",
                "--timeout=300s",
            ],
        );
    }
}

/// Runs `devenv ARGS` as `user`; panics with its output unless it exits 0.
fn devenv_as(t: &mut TestEnv, user: &str, args: &[&str]) {
    t.set_var("DEVENV_USER", user);
    t.devenv_ok(args);
}

/// From `started`, until `workspace exec dev -- true` exits 0.
fn until_shell(t: &mut TestEnv, user: &str, started: Instant) -> Duration {
    t.set_var("DEVENV_USER", user);
    let deadline = started + Duration::from_secs(300);
    loop {
        if t.devenv(&["workspace", "exec", "dev", "--", "true"]).code == Some(0) {
            return started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{user}'s workspace: no shell within 300 s"
        );
    }
}

fn main() {
    let mut n = 20;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--workspaces" => n = positive_arg(&mut args, "--workspaces", usage),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let kubeconfig = std::env::var("KUBECONFIG").unwrap_or_else(|_| usage("KUBECONFIG is not set"));
    let profile = if cfg!(debug_assertions) {
        Profile::Debug
    } else {
        Profile::Release
    };
    let mut t = TestEnv::with_bins(Bins::get(profile));
    t.set_var("KUBECONFIG", &kubeconfig);
    let ns = format!("bench-ws-{}", std::process::id());
    t.write_config(&config(&ns));
    let _cleanup = Cleanup(&kubeconfig, &ns);
    let users: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();

    let mut create = Sample::default();
    let mut create_cmd = Sample::default();
    for u in &users {
        let started = Instant::now();
        devenv_as(&mut t, u, &["workspace", "create", "dev"]);
        create_cmd.push(started.elapsed());
        create.push(until_shell(&mut t, u, started));
        eprintln!("{u}: created, shell after {:?}", started.elapsed());
    }
    // Every user's workspace, with its volumes, as the admin view lists them.
    t.set_var("DEVENV_USER", "u0");
    let ls = t.devenv_ok(&["--json", "workspace", "ls", "--all"]);
    let listed: Value = serde_json::from_str(&ls.stdout).expect("ls --json");
    let running = listed["workspaces"]
        .as_array()
        .map(|a| a.iter().filter(|w| w["state"] == "running").count())
        .unwrap_or(0);
    assert_eq!(running, n, "ls --all: {listed}");

    // Volume usage from the kubelet's stats summary (through the API server's node proxy).
    let mut used_bytes = 0u64;
    let mut volumes = 0usize;
    let nodes = kc(
        &kubeconfig,
        &["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"],
    )
    .unwrap_or_default();
    for node in nodes.split_whitespace() {
        let raw = kc(
            &kubeconfig,
            &[
                "get",
                "--raw",
                &format!("/api/v1/nodes/{node}/proxy/stats/summary"),
            ],
        );
        let summary: Value = raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default();
        for pod in summary["pods"].as_array().into_iter().flatten() {
            if pod["podRef"]["namespace"] != ns.as_str() {
                continue;
            }
            for v in pod["volume"].as_array().into_iter().flatten() {
                if v["pvcRef"].is_object() {
                    volumes += 1;
                    used_bytes += v["usedBytes"].as_u64().unwrap_or(0);
                }
            }
        }
    }

    // hostPath volumes (the test cluster's local-path provisioner) have no metrics in
    // the kubelet's summary: then `du` in each workspace, through exec.
    let mut du_kib = 0u64;
    let mut du_time = Sample::default();
    if volumes == 0 {
        for u in &users {
            t.set_var("DEVENV_USER", u);
            let started = Instant::now();
            let out = t.devenv_ok(&[
                "workspace",
                "exec",
                "dev",
                "--",
                "du",
                "-sk",
                "/workspace",
                "/home/dev/.history",
                "/home/dev/.config",
            ]);
            du_time.push(started.elapsed());
            du_kib += out
                .stdout
                .lines()
                .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }

    for u in &users {
        devenv_as(&mut t, u, &["workspace", "stop", "dev"]);
    }
    let mut start = Sample::default();
    for u in &users {
        let started = Instant::now();
        devenv_as(&mut t, u, &["workspace", "start", "dev"]);
        start.push(until_shell(&mut t, u, started));
    }
    for u in &users {
        devenv_as(&mut t, u, &["workspace", "delete", "dev", "--volumes"]);
    }

    let ms = |s: &Sample| format!("{:.0} / {:.0} ms", s.median(), s.p99());
    print_table(
        &format!("bench-workspaces ({n} workspaces, {profile:?} binaries)"),
        &[
            (
                "create -> shell-ready (median / p99)".into(),
                ms(&create),
                "< 10 s".into(),
            ),
            (
                "  of which `workspace create` returns".into(),
                ms(&create_cmd),
                String::new(),
            ),
            (
                "start from stopped -> shell-ready".into(),
                ms(&start),
                "< 5 s".into(),
            ),
            (
                "running in `ls --all`".into(),
                format!("{running} / {n}"),
                String::new(),
            ),
            (
                "volumes in the kubelet's stats".into(),
                format!("{volumes} ({} KiB used)", used_bytes / 1024),
                format!("{} claims", 3 * n),
            ),
            (
                "volume usage by du through exec".into(),
                if du_time.0.is_empty() {
                    "not needed".into()
                } else {
                    format!("{du_kib} KiB, {}", ms(&du_time))
                },
                "per workspace".into(),
            ),
        ],
    );
}
