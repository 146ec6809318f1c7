//! bench-kube: `devenv up` to ready for a 10-Deployment environment on the test
//! cluster, side by side with `kubectl apply -f` + `kubectl rollout status` of the same
//! objects, plus devenv's apply latency per object.
//!
//! ```sh
//! bash tests/cluster/up.sh && export KUBECONFIG=/var/tmp/devenv-test-cluster/kubeconfig/admin.conf
//! cargo run --release -p devenv-e2e --bin bench-kube -- [--runs N] [--services N]
//! ```
//!
//! Each run starts from nothing (no namespace) for both tools and ends with the
//! namespace deleted (not timed). The workload: busybox httpd with an HTTP readiness
//! probe, one pod each, a Service each. kubectl runs `rollout status` per Deployment
//! one after another, as a deploy script does. See docs/benchmarks.md.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use devenv_e2e::bench::{positive_arg, Sample};
use devenv_e2e::kube::kubectl;
use devenv_e2e::{Bins, Profile, TestEnv};

const IMAGE: &str = "devenv.test/busybox:1.35.0";
const COMMAND: &str = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www";

struct Opts {
    runs: usize,
    services: usize,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        runs: 10,
        services: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => o.runs = positive_arg(&mut args, "--runs", usage),
            "--services" => o.services = positive_arg(&mut args, "--services", usage),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    o
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("bench-kube: {err}");
    }
    eprintln!(
        "usage: bench-kube [--runs N] [--services N]   (needs KUBECONFIG: tests/cluster/up.sh)"
    );
    std::process::exit(if err.is_empty() { 0 } else { 2 });
}

fn kc(kubeconfig: &str, args: &[&str]) -> bool {
    Command::new(kubectl())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn devenv_config(env: &str, n: usize) -> String {
    let mut y = format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  cluster: {{ provider: kubeconfig }}\n  services:\n"
    );
    for i in 0..n {
        y.push_str(&format!(
            "    - name: svc{i}\n      image: {IMAGE}\n      command: \"{COMMAND}\"\n      ports: [8080]\n      readiness: {{ path: /, port: 8080, periodSeconds: 1 }}\n"
        ));
    }
    y
}

/// The same objects devenv renders, as plain YAML for kubectl.
fn kubectl_manifest(ns: &str, n: usize) -> String {
    let mut y = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n");
    for i in 0..n {
        y.push_str(&format!(
            r#"---
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: svc{i}, namespace: {ns} }}
spec:
  replicas: 1
  selector: {{ matchLabels: {{ app: svc{i} }} }}
  template:
    metadata: {{ labels: {{ app: svc{i} }} }}
    spec:
      terminationGracePeriodSeconds: 10
      enableServiceLinks: false
      containers:
        - name: svc{i}
          image: {IMAGE}
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "{COMMAND}"]
          ports: [{{ containerPort: 8080 }}]
          readinessProbe: {{ httpGet: {{ path: /, port: 8080 }}, periodSeconds: 1 }}
---
apiVersion: v1
kind: Service
metadata: {{ name: svc{i}, namespace: {ns} }}
spec:
  selector: {{ app: svc{i} }}
  ports: [{{ port: 8080, targetPort: 8080 }}]
"#
        ));
    }
    y
}

fn wait_namespace_gone(kubeconfig: &str, ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while kc(kubeconfig, &["get", "namespace", ns]) {
        if Instant::now() > deadline {
            eprintln!("bench-kube: namespace {ns} still there after 120s");
            break;
        }
        // Namespace deletion has no CLI wait that survives NotFound races; this poll
        // is between runs, outside every timed section.
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main() {
    let o = parse_args();
    let kubeconfig = match std::env::var("KUBECONFIG") {
        Ok(k) if Path::new(&k).exists() => k,
        _ => usage("KUBECONFIG must point at a cluster (bash tests/cluster/up.sh prints it)"),
    };
    let mut t = TestEnv::with_bins(Bins::get(Profile::Release));
    t.set_var("KUBECONFIG", &kubeconfig);
    let env = format!("benchk{}", std::process::id());
    t.write_config(&devenv_config(&env, o.services));
    let manifest = t.root().join("kubectl.yaml");
    let kns = format!("{env}-kubectl");
    std::fs::write(&manifest, kubectl_manifest(&kns, o.services)).expect("write manifest");
    let manifest = manifest.display().to_string();

    let mut devenv_up = Sample::default();
    let mut kubectl_up = Sample::default();
    let mut kubectl_apply = Sample::default();
    let mut per_object = Sample::default();
    let objects = 2 * o.services;
    for run in 0..o.runs {
        // devenv
        let start = Instant::now();
        let out = t.devenv(&["up"]);
        let took = start.elapsed();
        assert_eq!(out.code, Some(0), "devenv up failed\n{out}");
        devenv_up.push(took);
        let logs = t.devenv_ok(&["logs", "--tail", "10000"]).stdout;
        for line in logs.lines().filter(|l| l.contains("applied 2 object(s)")) {
            if let Some(ms) = line
                .split(" in ")
                .nth(1)
                .and_then(|r| r.trim_end_matches(" ms").trim().parse::<f64>().ok())
            {
                per_object.0.push(ms / 2.0);
            }
        }
        t.devenv_ok(&["down", "--volumes"]);
        t.devenv_ok(&["daemon", "stop"]);
        let _ = std::fs::remove_dir_all(&t.data_dir);

        // kubectl
        let start = Instant::now();
        assert!(
            kc(&kubeconfig, &["apply", "-f", &manifest]),
            "kubectl apply failed"
        );
        kubectl_apply.push(start.elapsed());
        for i in 0..o.services {
            assert!(
                kc(
                    &kubeconfig,
                    &[
                        "rollout",
                        "status",
                        "-n",
                        &kns,
                        &format!("deployment/svc{i}"),
                        "--timeout=120s"
                    ]
                ),
                "rollout status failed"
            );
        }
        kubectl_up.push(start.elapsed());
        kc(&kubeconfig, &["delete", "namespace", &kns, "--wait=false"]);
        wait_namespace_gone(&kubeconfig, &kns);
        eprintln!(
            "run {}: devenv {:.0} ms, kubectl {:.0} ms",
            run + 1,
            devenv_up.0.last().copied().unwrap_or(0.0),
            kubectl_up.0.last().copied().unwrap_or(0.0)
        );
    }
    let row = |name: &str, s: &Sample, target: &str| {
        (
            name.to_owned(),
            format!("{:.0} / {:.0} ms", s.median(), s.p99()),
            target.to_owned(),
        )
    };
    devenv_e2e::bench::print_table(
        &format!(
            "bench-kube: {} Deployments + Services, {} runs, median / p99",
            o.services, o.runs
        ),
        &[
            row("devenv up -> all ready", &devenv_up, "faster than kubectl"),
            row("kubectl apply + rollout status", &kubectl_up, "(peer)"),
            row(
                "kubectl apply alone",
                &kubectl_apply,
                &format!("({objects} objects + namespace)"),
            ),
            (
                "devenv apply per object".into(),
                format!("{:.1} / {:.1} ms", per_object.median(), per_object.p99()),
                "(server-side apply, in the daemon)".into(),
            ),
        ],
    );
}
