//! bench-exec: wall time of `devenv exec SVC -- true` into a local service (daemon
//! warm), and, when KUBECONFIG points at a cluster, `devenv exec` into a pod side by
//! side with `kubectl exec` into the same pod.
//!
//! ```sh
//! cargo run --release -p devenv-e2e --bin bench-exec -- [--runs N] [--kube-runs N]
//! ```
//!
//! Each sample is one process from spawn to exit, output to /dev/null, as a script
//! calling it sees it. See docs/benchmarks.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use devenv_e2e::bench::{positive_arg, Sample};
use devenv_e2e::kube::kubectl;
use devenv_e2e::{Bins, Profile, TestEnv};

const IMAGE: &str = "devenv.test/busybox:1.35.0";
const WARMUP: usize = 5;

struct Opts {
    runs: usize,
    kube_runs: usize,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        runs: 200,
        kube_runs: 50,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => o.runs = positive_arg(&mut args, "--runs", usage),
            "--kube-runs" => o.kube_runs = positive_arg(&mut args, "--kube-runs", usage),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    o
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("bench-exec: {err}");
    }
    eprintln!("usage: bench-exec [--runs N] [--kube-runs N]   (the pod half needs KUBECONFIG)");
    std::process::exit(if err.is_empty() { 0 } else { 2 });
}

/// Runs `cmd` to its end with no output; its wall time. Panics unless it exits 0.
fn timed(cmd: &mut Command, what: &str) -> std::time::Duration {
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let took = start.elapsed();
    assert!(status.success(), "{what} failed: {status}");
    took
}

fn devenv(t: &TestEnv, args: &[&str]) -> Command {
    let mut cmd = Command::new(&t.bins.devenv);
    cmd.args(args)
        .current_dir(&t.project)
        .env_clear()
        .envs(t.env_vars());
    cmd
}

fn row(name: &str, s: &Sample, target: &str) -> (String, String, String) {
    (
        name.to_owned(),
        format!("{:.2} / {:.2} ms", s.median(), s.p99()),
        target.to_owned(),
    )
}

fn main() {
    let o = parse_args();
    let bins = Bins::get(Profile::Release);
    let mut rows = Vec::new();

    // Local: a service that only sleeps; `true` in its workdir with its environment.
    let t = TestEnv::with_bins(bins);
    t.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: benchexec\nspec:\n  services:\n    - name: svc\n      command: exec sleep 100000\n",
    );
    t.devenv_ok(&["up"]);
    let mut local = Sample::default();
    let mut direct = Sample::default();
    for i in 0..WARMUP + o.runs {
        let took = timed(
            &mut devenv(&t, &["exec", "svc", "--", "true"]),
            "devenv exec",
        );
        let base = timed(&mut Command::new("true"), "true");
        if i >= WARMUP {
            local.push(took);
            direct.push(base);
        }
    }
    rows.push(row(
        &format!("devenv exec svc -- true, local ({} runs)", o.runs),
        &local,
        "median < 30 ms",
    ));
    rows.push(row(
        "spawning `true` directly (floor)",
        &direct,
        "(reference)",
    ));
    t.devenv_ok(&["down"]);
    t.devenv_ok(&["daemon", "stop"]);

    match std::env::var("KUBECONFIG") {
        Ok(k) if Path::new(&k).exists() => rows.extend(kube(bins, &k, o.kube_runs)),
        _ => eprintln!("bench-exec: KUBECONFIG not set to a file: skipping the pod half"),
    }
    devenv_e2e::bench::print_table("bench-exec: median / p99", &rows);
}

/// `devenv exec` and `kubectl exec` into the same pod, alternating run by run.
fn kube(bins: &'static Bins, kubeconfig: &str, runs: usize) -> Vec<(String, String, String)> {
    let mut t = TestEnv::with_bins(bins);
    t.set_var("KUBECONFIG", kubeconfig);
    let env = format!("benchexec{}", std::process::id());
    let ns = format!("devenv-{env}");
    t.write_config(&format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  cluster: {{ provider: kubeconfig }}\n  services:\n    - name: box\n      image: {IMAGE}\n      command: exec sleep 100000\n"
    ));
    t.devenv_ok(&["up"]);
    let pod = Command::new(kubectl())
        .args([
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            &format!("devenv.dev/environment={env},devenv.dev/service=box"),
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl get pods");
    let pod = String::from_utf8_lossy(&pod.stdout).trim().to_string();
    assert!(!pod.is_empty(), "no pod of the service `box` in {ns}");
    let mut ours = Sample::default();
    let mut theirs = Sample::default();
    for i in 0..WARMUP + runs {
        let a = timed(
            &mut devenv(&t, &["exec", "box", "--", "true"]),
            "devenv exec (pod)",
        );
        let b = timed(
            Command::new(kubectl())
                .args(["exec", "-n", &ns, &pod, "--", "true"])
                .env("KUBECONFIG", kubeconfig),
            "kubectl exec",
        );
        if i >= WARMUP {
            ours.push(a);
            theirs.push(b);
        }
    }
    t.devenv_ok(&["down"]);
    t.devenv_ok(&["daemon", "stop"]);
    let ratio = ours.median() / theirs.median();
    vec![
        row(
            &format!("devenv exec box -- true, pod ({runs} runs)"),
            &ours,
            "within 1.2x of kubectl",
        ),
        row("kubectl exec POD -- true", &theirs, "(peer)"),
        (
            "devenv / kubectl (medians)".into(),
            format!("{ratio:.2}x"),
            "<= 1.2x".into(),
        ),
    ]
}
