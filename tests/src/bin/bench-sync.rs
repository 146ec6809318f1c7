//! bench-sync: dev-mode file sync into a pod on the test cluster, through the real
//! (release) devenvd: save -> file written in the pod, side by side with `kubectl cp`
//! of one file; the initial sync of a 10k-file / 100 MB tree; and the re-sync of that
//! tree unchanged.
//!
//! ```sh
//! bash tests/cluster/up.sh && export KUBECONFIG=/var/tmp/devenv-test-cluster/kubeconfig/admin.conf
//! cargo run --release -p devenv-e2e --bin bench-sync -- [--saves N] [--files N] [--size BYTES] [--resyncs N]
//! ```
//!
//! "Save -> in the pod" ends when a `devenv logs -f` client reads the daemon's line
//! about the batch, which the daemon writes after the pod's receiver acknowledged it
//! (the file is on the pod's disk): an upper bound. `kubectl cp` ends when the command
//! exits. Initial sync and re-sync are the daemon's own timing of opening the session
//! and bringing the tree in line (its "in sync in N ms" line); a re-sync is provoked by
//! killing the receiver in the pod, after which the daemon reconnects and compares.
//! See docs/benchmarks.md.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use devenv_e2e::bench::{positive_arg, Sample};
use devenv_e2e::kube::kubectl;
use devenv_e2e::{wait_until, Bins, Profile, TestEnv};
use serde_json::Value;

const IMAGE: &str = "devenv.test/busybox:1.35.0";

struct Opts {
    saves: usize,
    files: usize,
    size: usize,
    resyncs: usize,
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("bench-sync: {err}");
    }
    eprintln!("usage: bench-sync [--saves N] [--files N] [--size BYTES] [--resyncs N]   (needs KUBECONFIG: tests/cluster/up.sh)");
    std::process::exit(if err.is_empty() { 0 } else { 2 });
}

fn parse_args() -> Opts {
    let mut o = Opts {
        saves: 100,
        files: 10_000,
        size: 10_000,
        resyncs: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--saves" => o.saves = positive_arg(&mut args, "--saves", usage),
            "--files" => o.files = positive_arg(&mut args, "--files", usage),
            "--size" => o.size = positive_arg(&mut args, "--size", usage),
            "--resyncs" => o.resyncs = positive_arg(&mut args, "--resyncs", usage),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    o
}

fn kc(kubeconfig: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(kubectl())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The sync sessions of `service`, once each watches.
fn sessions(t: &TestEnv, service: &str) -> Vec<Value> {
    let out = t.devenv(&["sync", "status", "--json"]);
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["sessions"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s["service"] == service)
        .collect()
}

fn watching_pod(t: &TestEnv, service: &str) -> String {
    let mut pod = None;
    let ok = wait_until(Duration::from_secs(300), || {
        pod = sessions(t, service)
            .first()
            .filter(|s| s["phase"] == "watching" && s["connected"] == true)
            .and_then(|s| s["pod"].as_str().map(str::to_owned));
        pod.is_some()
    });
    assert!(ok, "{service}: no sync session watching");
    pod.expect("pod")
}

/// Lines of `devenv logs -f SERVICE`, with the instant each was read.
fn follow_logs(
    t: &TestEnv,
    service: &str,
) -> (std::process::Child, mpsc::Receiver<(Instant, String)>) {
    let mut child = t.spawn_devenv(&["logs", "-f", "-n", "0", service]);
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Waits for the next log line containing `needle`.
fn next_line(
    rx: &mpsc::Receiver<(Instant, String)>,
    needle: &str,
    limit: Duration,
) -> (Instant, String) {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, line)) if line.contains(needle) => return (at, line),
            Ok(_) => {}
            Err(_) => panic!("no log line with {needle:?} within {limit:?}"),
        }
    }
}

/// The N of "in sync in N ms".
fn in_sync_ms(line: &str) -> f64 {
    line.split("in sync in ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line:?}"))
}

fn write_tree(root: &Path, files: usize, size: usize) -> u64 {
    let per_dir = 100;
    let mut total = 0u64;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut buf = vec![0u8; size];
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i / per_dir));
        if i % per_dir == 0 {
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        for b in buf.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = (state & 0xff) as u8;
        }
        std::fs::write(dir.join(format!("f{i:05}.bin")), &buf).expect("write");
        total += size as u64;
    }
    total
}

/// Deletes the bench's namespace when the bench ends, also by a panic (after `down` it
/// is already gone).
struct DeleteNamespace {
    kubeconfig: String,
    ns: String,
}

impl Drop for DeleteNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = kc(
                &self.kubeconfig,
                &["delete", "namespace", &self.ns, "--wait=false"],
            );
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let o = parse_args();
    let kubeconfig = match std::env::var("KUBECONFIG") {
        Ok(k) if Path::new(&k).exists() => k,
        _ => usage("KUBECONFIG must point at a cluster (bash tests/cluster/up.sh prints it)"),
    };
    let mut t = TestEnv::with_bins(Bins::get(Profile::Release));
    t.set_var("KUBECONFIG", &kubeconfig);
    let env = format!("benchs{}", std::process::id());
    let ns = format!("devenv-{env}");
    let _cleanup = DeleteNamespace {
        kubeconfig: kubeconfig.clone(),
        ns: ns.clone(),
    };
    let project = t.root().join("project");
    std::fs::create_dir_all(project.join("site")).expect("mkdir site");
    std::fs::write(project.join("site/index.html"), "start\n").expect("write");
    eprintln!("bench-sync: writing the {}-file tree ...", o.files);
    let bytes = write_tree(&project.join("big"), o.files, o.size);
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
    - name: web
      image: {IMAGE}
      command: "exec sleep 1000000"
      dev:
        sync: [{{ from: ./site, to: /app }}]
    - name: big
      image: {IMAGE}
      command: "exec sleep 1000000"
      dev:
        sync: [{{ from: ./big, to: /data }}]
"#
    ));

    // Save -> in the pod.
    t.devenv_ok(&["up", "--dev", "web"]);
    let pod = watching_pod(&t, "web");
    let (mut logs, rx) = follow_logs(&t, "web");
    // The follower is attached once it shows a line we cause.
    std::fs::write(project.join("site/warm.txt"), "warm\n").expect("write");
    next_line(&rx, "written", Duration::from_secs(30));
    let mut devenv_save = Sample::default();
    let file = project.join("site/index.html");
    for i in 0..o.saves {
        let start = Instant::now();
        std::fs::write(&file, format!("save {i}\n")).expect("save");
        let (at, _) = next_line(&rx, "1 written", Duration::from_secs(30));
        devenv_save.push(at - start);
        // Each save its own batch, as when a developer saves.
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = logs.kill();
    let _ = logs.wait();
    let last = kc(
        &kubeconfig,
        &["exec", "-n", &ns, &pod, "--", "cat", "/app/index.html"],
    );
    assert_eq!(
        last.as_deref().map(str::trim),
        Some(format!("save {}", o.saves - 1).as_str())
    );

    let mut kubectl_cp = Sample::default();
    let target = format!("{ns}/{pod}:/tmp/kcp.html");
    for i in 0..o.saves {
        std::fs::write(&file, format!("cp {i}\n")).expect("save");
        let start = Instant::now();
        let ok = kc(&kubeconfig, &["cp", file.to_str().expect("utf-8"), &target]).is_some();
        kubectl_cp.push(start.elapsed());
        assert!(ok, "kubectl cp failed");
    }

    let cores = devenv_e2e::bench::cores();
    println!("bench-sync ({cores} cores, release devenvd, test cluster)");
    println!(
        "save -> in the pod, devenv ({} saves):  median {:.1} ms  p99 {:.1} ms",
        o.saves,
        devenv_save.median(),
        devenv_save.p99()
    );
    println!(
        "kubectl cp of one file ({} runs):       median {:.1} ms  p99 {:.1} ms",
        o.saves,
        kubectl_cp.median(),
        kubectl_cp.p99()
    );

    // Initial sync of the big tree, then re-syncs of it unchanged.
    let (mut logs, rx) = follow_logs(&t, "big");
    let started = Instant::now();
    t.devenv_ok(&["up", "--dev", "big"]);
    let (_, line) = next_line(&rx, "in sync in", Duration::from_secs(600));
    let wall = started.elapsed();
    let initial = in_sync_ms(&line);
    eprintln!("bench-sync: {line}");
    let big_pod = watching_pod(&t, "big");
    let mut resync = Sample::default();
    let mut resync_wall = Sample::default();
    for _ in 0..o.resyncs {
        // Kill the receiver (not the pod): the daemon notices the stream end, reconnects
        // and compares.
        let killed = Instant::now();
        // busybox has no pkill here; `[n]` keeps the killer's own command line from
        // matching.
        let killed_one = kc(
            &kubeconfig,
            &[
                "exec",
                "-n",
                &ns,
                &big_pod,
                "--",
                "sh",
                "-c",
                "for p in /proc/[0-9]*; do if grep -q 'devenv-sy[n]c' $p/cmdline 2>/dev/null; then kill ${p#/proc/} && echo killed $p; fi; done",
            ],
        );
        let killed_one = killed_one.unwrap_or_default();
        assert!(
            killed_one.contains("killed"),
            "could not kill the receiver in {big_pod}"
        );
        eprintln!("bench-sync: in {big_pod}: {}", killed_one.trim());
        let (at, line) = next_line(&rx, "in sync in", Duration::from_secs(120));
        eprintln!("bench-sync: {line}");
        resync.push(Duration::from_secs_f64(in_sync_ms(&line) / 1000.0));
        resync_wall.push(at - killed);
    }
    let _ = logs.kill();
    let _ = logs.wait();
    let verify = t.devenv(&["sync", "verify", "big"]);
    assert_eq!(verify.code, Some(0), "big tree not in sync\n{verify}");
    t.devenv_ok(&["down", "--volumes"]);

    println!(
        "initial sync {} files / {:.1} MB: {:.0} ms (devenv up --dev to in sync: {:.0} ms)",
        o.files,
        bytes as f64 / 1e6,
        initial,
        ms(wall)
    );
    println!(
        "re-sync unchanged ({} runs):  median {:.0} ms  p99 {:.0} ms (reopen + compare); from the kill: median {:.0} ms  p99 {:.0} ms",
        o.resyncs,
        resync.median(),
        resync.p99(),
        resync_wall.median(),
        resync_wall.p99()
    );
}
