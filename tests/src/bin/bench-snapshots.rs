//! bench-snapshots: `devenv snapshot save`, an unchanged re-save and `restore` of a
//! 1 GiB volume, for a claim on the test cluster (helper pod, tar over exec) and for
//! a local service's persistent volume, with the release binaries.
//!
//! ```sh
//! eval "$(tests/cluster/up.sh)"        # for the claim; `--only local` needs no cluster
//! cargo run --release -p devenv-e2e --bin bench-snapshots -- [--runs N] [--mib N] [--only pvc|local]
//! ```
//!
//! The data, made fresh before every run (untimed) so that each full save finds no
//! chunk it already has: 15/16 of `--mib` as random bytes (incompressible) in 64 MiB
//! files, 1/16 as text (compressible, ~10x with zstd) in 1 MiB files. A run: `save`
//! (full: the service stopped or scaled to 0 for the copy), `save` again with nothing
//! changed, one file removed (so the restore has something to undo), `restore` of the
//! first, then both snapshots removed (untimed). The service is a shell that exits on
//! SIGTERM, as a server does (a bare `sleep` would hold every stop for the pod's
//! grace period). Each timed command is the CLI's wall
//! time from spawn to exit; its `--json` steps are time-stamped as they arrive, which
//! gives the phases of the last run (the profile). See docs/benchmarks.md.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use devenv_e2e::bench::{positive_arg, print_table, Sample};
use devenv_e2e::kube::kubectl;
use devenv_e2e::{Bins, Profile, TestEnv};

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";
/// Bytes of a random file.
const RANDOM_FILE: u64 = 64 << 20;
/// Bytes of a text file.
const TEXT_FILE: u64 = 1 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Pvc,
    Local,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Pvc => "claim (cluster)",
            Target::Local => "local volume",
        }
    }
}

struct Opts {
    runs: usize,
    mib: u64,
    targets: Vec<Target>,
    profile: Profile,
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("bench-snapshots: {err}");
    }
    eprintln!("usage: bench-snapshots [--runs N] [--mib N] [--only pvc|local] [--debug]   (pvc needs KUBECONFIG: tests/cluster/up.sh)");
    std::process::exit(if err.is_empty() { 0 } else { 2 });
}

fn parse_args() -> Opts {
    let mut o = Opts {
        runs: 5,
        mib: 1024,
        targets: vec![Target::Local, Target::Pvc],
        profile: Profile::Release,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => o.runs = positive_arg(&mut args, "--runs", usage),
            "--mib" => o.mib = positive_arg(&mut args, "--mib", usage) as u64,
            "--only" => {
                o.targets = match args.next().as_deref() {
                    Some("pvc") => vec![Target::Pvc],
                    Some("local") => vec![Target::Local],
                    _ => usage("--only needs pvc or local"),
                }
            }
            // The debug binaries (their dependencies unoptimized: zstd and BLAKE3
            // several times slower), where a release build is out of reach.
            "--debug" => o.profile = Profile::Debug,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if o.mib < 32 {
        usage("--mib must be at least 32");
    }
    o
}

/// Each `{"step": ..}` line of a run, with its time from the command's start.
type Steps = Vec<(Duration, String)>;

/// A timed CLI run: its wall time and each `{"step": ..}` line with when it came.
struct Timed {
    took: Duration,
    steps: Steps,
    done: serde_json::Value,
}

fn timed(t: &TestEnv, args: &[&str]) -> Timed {
    let start = Instant::now();
    let mut child = t.spawn_devenv(args);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut steps = Vec::new();
    let mut done = serde_json::Value::Null;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let at = start.elapsed();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if let Some(s) = v.get("step").and_then(|s| s.as_str()) {
                steps.push((at, s.to_owned()));
            }
            if let Some(d) = v.get("done") {
                done = d.clone();
            }
        }
        lines.push(line);
    }
    let status = child.wait().expect("wait for devenv");
    let took = start.elapsed();
    assert!(
        status.success(),
        "devenv {} failed ({status}):\n{}",
        args.join(" "),
        lines.join("\n")
    );
    Timed { took, steps, done }
}

/// xorshift64*: random bytes fast enough that making the data is not the bench.
fn fill_random(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        let v = seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// The files of a run: (relative path, bytes), random ones first.
fn layout(mib: u64) -> Vec<(String, u64, bool)> {
    let total = mib << 20;
    let text = total / 16;
    let mut out = Vec::new();
    let mut left = total - text;
    let mut i = 0;
    while left > 0 {
        let n = left.min(RANDOM_FILE);
        out.push((format!("random/r{i:03}"), n, true));
        left -= n;
        i += 1;
    }
    let mut left = text;
    let mut i = 0;
    while left > 0 {
        let n = left.min(TEXT_FILE);
        out.push((format!("text/t{i:03}.log"), n, false));
        left -= n;
        i += 1;
    }
    out
}

fn text_bytes(n: u64, run: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n as usize);
    let mut i = 0u64;
    while (out.len() as u64) < n {
        writeln!(
            out,
            "2026-12-06T02:{:02}:{:02}.{:03}Z INFO run {run} request {i} GET /api/items?page={} status=200 bytes={}",
            (i / 60) % 60,
            i % 60,
            i % 1000,
            i % 97,
            (i * 7919) % 100_000
        )
        .unwrap();
        i += 1;
    }
    out.truncate(n as usize);
    out
}

/// Writes a run's data into `dir` (the old data removed first).
fn make_local_data(dir: &Path, mib: u64, run: usize) {
    for sub in ["random", "text"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (run as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut buf = vec![0u8; 1 << 20];
    for (path, n, random) in layout(mib) {
        let mut f = std::fs::File::create(dir.join(&path)).unwrap();
        if random {
            let mut left = n;
            while left > 0 {
                let k = left.min(buf.len() as u64) as usize;
                fill_random(&mut buf[..k], &mut seed);
                f.write_all(&buf[..k]).unwrap();
                left -= k as u64;
            }
        } else {
            f.write_all(&text_bytes(n, run)).unwrap();
        }
    }
}

/// The same layout inside the pod: random bytes from the kernel, text from a shell
/// loop written once and copied.
fn make_pvc_data(ns: &str, mib: u64, run: usize) {
    let mut script = String::from("set -e; cd /data; rm -rf random text; mkdir random text\n");
    for (path, n, random) in layout(mib) {
        if random {
            script.push_str(&format!("head -c {n} /dev/urandom > {path}\n"));
        }
    }
    script.push_str(&format!(
        // The seed ends mid-line: the end marker needs a line of its own.
        "cat > /tmp/text.seed <<'EOF'\n{}\nEOF\n",
        String::from_utf8_lossy(&text_bytes(TEXT_FILE, run))
    ));
    for (path, n, random) in layout(mib) {
        if !random {
            script.push_str(&format!("head -c {n} /tmp/text.seed > {path}\n"));
        }
    }
    script.push_str("sync\n");
    let status = Command::new(kubectl())
        .args(["exec", "-i", "-n", ns, "deploy/app", "--", "sh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait()
        })
        .expect("kubectl exec");
    assert!(status.success(), "making the data in the pod failed");
}

fn find_volume(data_dir: &Path) -> PathBuf {
    for env in std::fs::read_dir(data_dir.join("envs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let v = env.path().join("volumes/data");
        if v.is_dir() {
            return v;
        }
    }
    panic!("no volumes/data under {}", data_dir.display());
}

struct Results {
    save: Sample,
    resave: Sample,
    restore: Sample,
    /// (command, its steps, its wall time) of the last run.
    profile: Vec<(String, Steps, Duration)>,
}

fn bench(target: Target, o: &Opts) -> Results {
    let mut t = TestEnv::with_bins(Bins::get(o.profile));
    let env = format!("benchsnap{}", std::process::id());
    let ns = format!("devenv-{env}");
    let config = match target {
        Target::Pvc => {
            let kubeconfig = match std::env::var("KUBECONFIG") {
                Ok(k) if Path::new(&k).exists() => k,
                _ => usage("KUBECONFIG must point at the test cluster (tests/cluster/up.sh prints it), or use --only local"),
            };
            t.set_var("KUBECONFIG", &kubeconfig);
            format!(
                r#"apiVersion: devenv/v1
kind: Environment
metadata: {{ name: {env} }}
spec:
  cluster: {{ provider: kubeconfig, snapshotImage: "{BUSYBOX}" }}
  volumes: [{{ name: data, type: persistent, size: {}Mi }}]
  services:
    - name: app
      image: {BUSYBOX}
      command: "trap 'exit 0' TERM; sleep 100000 & wait"
      volumes: ["data:/data"]
"#,
                o.mib * 3
            )
        }
        Target::Local => format!(
            r#"apiVersion: devenv/v1
kind: Environment
metadata: {{ name: {env} }}
spec:
  volumes: [{{ name: data, type: persistent }}]
  services:
    - name: app
      command: "trap 'exit 0' TERM; sleep 100000 & wait"
      volumes: ["data:/data"]
"#
        ),
    };
    t.write_config(&config);
    t.devenv_ok(&["up"]);
    let local_dir = (target == Target::Local).then(|| find_volume(&t.data_dir));
    let mut r = Results {
        save: Sample::default(),
        resave: Sample::default(),
        restore: Sample::default(),
        profile: Vec::new(),
    };
    for run in 0..o.runs {
        match &local_dir {
            Some(dir) => make_local_data(dir, o.mib, run),
            None => make_pvc_data(&ns, o.mib, run),
        }
        let (full, same) = (format!("full-{run}"), format!("same-{run}"));
        let save = timed(&t, &["--json", "snapshot", "save", &full]);
        let resave = timed(&t, &["--json", "snapshot", "save", &same]);
        assert_eq!(
            save.done["bytes"], resave.done["bytes"],
            "both saves hold the same data"
        );
        match &local_dir {
            Some(dir) => std::fs::remove_file(dir.join("random/r000")).unwrap(),
            None => {
                let ok = Command::new(kubectl())
                    .args([
                        "exec",
                        "-n",
                        &ns,
                        "deploy/app",
                        "--",
                        "rm",
                        "/data/random/r000",
                    ])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "kubectl exec rm failed");
            }
        }
        let restore = timed(&t, &["--json", "snapshot", "restore", &full]);
        eprintln!(
            "{} run {}: save {:.1} s, unchanged re-save {:.1} s, restore {:.1} s",
            target.name(),
            run + 1,
            save.took.as_secs_f64(),
            resave.took.as_secs_f64(),
            restore.took.as_secs_f64()
        );
        r.save.push(save.took);
        r.resave.push(resave.took);
        r.restore.push(restore.took);
        r.profile = vec![
            ("save".into(), save.steps, save.took),
            ("re-save".into(), resave.steps, resave.took),
            ("restore".into(), restore.steps, restore.took),
        ];
        t.devenv_ok(&["snapshot", "rm", &full]);
        t.devenv_ok(&["snapshot", "rm", &same]);
    }
    t.devenv_ok(&["down", "--volumes"]);
    t.devenv_ok(&["daemon", "stop"]);
    r
}

fn main() {
    let o = parse_args();
    let mut rows = Vec::new();
    let mut profiles = Vec::new();
    for &target in &o.targets {
        let r = bench(target, &o);
        let row = |what: &str, s: &Sample, goal: &str| {
            (
                format!("{} {what}", target.name()),
                format!("{:.2} / {:.2} s", s.median() / 1000.0, s.p99() / 1000.0),
                goal.to_owned(),
            )
        };
        rows.push(row("save", &r.save, "< 30 s"));
        rows.push(row("unchanged re-save", &r.resave, "< 3 s"));
        rows.push(row("restore", &r.restore, "< 30 s"));
        profiles.push((target, r.profile));
    }
    println!("\nprofile of the last run (seconds from the command's start to each step):");
    for (target, profile) in profiles {
        for (what, steps, took) in profile {
            println!("  {} {what} ({:.2} s):", target.name(), took.as_secs_f64());
            for (at, step) in steps {
                println!("    {:>7.2}  {step}", at.as_secs_f64());
            }
        }
    }
    print_table(
        &format!(
            "bench-snapshots: {} MiB (15/16 random, 1/16 text), {} runs, median / p99{}",
            o.mib,
            o.runs,
            if o.profile == Profile::Debug {
                ", DEBUG binaries"
            } else {
                ""
            }
        ),
        &rows,
    );
}
