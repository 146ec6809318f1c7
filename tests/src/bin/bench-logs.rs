//! Loss-free log follow throughput of the release binaries: services printing as
//! fast as they can, `devenv logs -f` consuming at its own pace, lines/s delivered
//! end to end with the lines missed (0 unless retention deleted them first), and
//! the daemon's peak RSS. With `--kubectl`, the same burst printed by a pod on the
//! cluster in $KUBECONFIG and read by `kubectl logs -f`, side by side. `producer`:
//! the generator's own wall time with no follower, a paused one and a full-speed
//! one (a follower must never slow a producer down).
//! See docs/benchmarks.md.
//!
//!   cargo run --release -p devenv-e2e --bin bench-logs -- [single|merged|producer|all]
//!       [--lines N] [--services N] [--merged-lines N] [--runs N]
//!       [--kubectl [--kube-image IMG] [--kube-namespace NS]]

use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use devenv_e2e::bench::{print_table, quantile};
use devenv_e2e::{read_hwm_kib, Bins, Profile, TestEnv};

/// What every service prints: a log line of realistic length.
const LINE: &str =
    "2024-05-01T12:00:00Z INFO request handled path=/api/items status=200 0123456789";

struct Opts {
    what: String,
    /// Lines of the single service.
    lines: u64,
    /// Services of the merged run; each prints `merged_lines`.
    services: usize,
    merged_lines: u64,
    runs: usize,
    /// Also measure `kubectl logs -f` of a pod printing the single burst.
    kubectl: bool,
    kube_image: String,
    kube_namespace: String,
}

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        what: "all".into(),
        lines: 2_000_000,
        services: 50,
        merged_lines: 40_000,
        runs: 3,
        kubectl: false,
        kube_image: "devenv.test/busybox:1.35.0".into(),
        kube_namespace: "default".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "single" | "merged" | "producer" | "all" => opts.what = a,
            "--lines" => opts.lines = num("--lines")?.max(1),
            "--services" => opts.services = num("--services")?.max(1) as usize,
            "--merged-lines" => opts.merged_lines = num("--merged-lines")?.max(1),
            "--runs" => opts.runs = num("--runs")?.max(1) as usize,
            "--kubectl" => opts.kubectl = true,
            "--kube-image" => {
                opts.kube_image = args.next().ok_or("--kube-image needs an image")?;
            }
            "--kube-namespace" => {
                opts.kube_namespace = args.next().ok_or("--kube-namespace needs a name")?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: bench-logs [single|merged|producer|all] [--lines N] [--services N] \
                     [--merged-lines N] [--runs N] [--kubectl [--kube-image IMG] \
                     [--kube-namespace NS]]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(opts)
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let bins = Bins::get(Profile::Release);
    let mut rows: Vec<(String, String, String)> = Vec::new();
    if opts.what == "single" || opts.what == "all" {
        run_case(
            bins,
            1,
            opts.lines,
            opts.runs,
            ">= 1M lines/s, 0 missed",
            &mut rows,
        );
        if opts.kubectl {
            kubectl_case(&opts, &mut rows);
        }
    }
    if opts.what == "merged" || opts.what == "all" {
        let target = ">= 500k lines/s, 0 missed";
        run_case(
            bins,
            opts.services,
            opts.merged_lines,
            opts.runs,
            target,
            &mut rows,
        );
    }
    if opts.what == "producer" || opts.what == "all" {
        producer_case(bins, opts.lines, opts.runs, &mut rows);
    }
    print_table("bench-logs", &rows);
}

/// Who follows the generator while it prints.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Follow {
    Nobody,
    /// `devenv logs -f` whose stdout is never read: it stalls once its pipe is full.
    Paused,
    FullSpeed,
}

/// The generator's wall time for `lines` lines with nobody, a paused and a
/// full-speed follower; the three alternate within each run so that the machine's
/// drift hits them alike.
fn producer_case(
    bins: &'static Bins,
    lines: u64,
    runs: usize,
    rows: &mut Vec<(String, String, String)>,
) {
    let kinds = [Follow::Nobody, Follow::Paused, Follow::FullSpeed];
    let mut walls: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for run in 0..runs {
        for (i, kind) in kinds.iter().enumerate() {
            let ms = producer_run(bins, lines, *kind);
            eprintln!("producer run {}: {kind:?}: {ms:.0} ms", run + 1);
            walls[i].push(ms);
        }
    }
    for (kind, mut w) in kinds.iter().zip(walls) {
        w.sort_by(f64::total_cmp);
        let what = match kind {
            Follow::Nobody => "no follower",
            Follow::Paused => "a paused follower",
            Follow::FullSpeed => "a full-speed follower",
        };
        rows.push((
            format!("generator wall time, {lines} lines, {what}: median / p99 of {runs}"),
            format!("{:.0} / {:.0} ms", quantile(&w, 0.5), quantile(&w, 0.99)),
            if *kind == Follow::Nobody {
                "(baseline)".into()
            } else {
                "= baseline".into()
            },
        ));
    }
}

/// One generator printing `lines` lines after its gate opens; returns its own wall
/// time in ms (measured by the generator, written to a file).
fn producer_run(bins: &'static Bins, lines: u64, follow: Follow) -> f64 {
    let env = TestEnv::with_bins(bins);
    let gate = env.root().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let wall = env.root().join("wall");
    let command = format!(
        "cat {gate} >/dev/null; s=$(date +%s%N); yes '{LINE}' | head -n {lines}; \
         e=$(date +%s%N); echo $(( (e - s) / 1000 )) > {wall}.tmp; mv {wall}.tmp {wall}; \
         exec sleep 100000",
        gate = gate.display(),
        wall = wall.display(),
    );
    env.write_config(&format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: benchproducer\n\
         spec:\n  services:\n    - name: gen\n      command: {}\n",
        serde_json::to_string(&command).expect("quote")
    ));
    env.devenv_ok(&["up"]);
    let mut client = (follow != Follow::Nobody).then(|| env.spawn_devenv(&["logs", "-f", "gen"]));
    let mut counter = None;
    if let Some(c) = client.as_mut() {
        let mut stdout = c.stdout.take().expect("piped stdout");
        // Subscribed once the snapshot's first line arrived.
        let mut first = [0u8; 1];
        stdout
            .read_exact(&mut first)
            .expect("the follower prints the snapshot");
        if follow == Follow::FullSpeed {
            counter = Some(std::thread::spawn(move || {
                let _ = std::io::copy(&mut stdout, &mut std::io::sink());
            }));
        } else {
            // Held, never read: the client blocks on a full pipe.
            counter = Some(std::thread::spawn(move || {
                let _keep = stdout;
                std::thread::park_timeout(Duration::from_secs(3600));
            }));
        }
    }
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&gate)
            .expect("open gate"),
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    let micros: u64 = loop {
        if let Some(v) = std::fs::read_to_string(&wall)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break v;
        }
        assert!(Instant::now() < deadline, "the generator never finished");
        std::thread::sleep(Duration::from_millis(20)); // polling a file the shell writes: no event to wait on
    };
    if let Some(mut c) = client {
        let _ = c.kill();
        let _ = c.wait();
    }
    if let Some(t) = counter {
        t.thread().unpark();
        let _ = t.join();
    }
    micros as f64 / 1000.0
}

struct RunResult {
    lines: u64,
    missed: u64,
    elapsed: Duration,
    hwm_kib: u64,
}

fn run_case(
    bins: &'static Bins,
    services: usize,
    lines: u64,
    runs: usize,
    target: &str,
    rows: &mut Vec<(String, String, String)>,
) {
    let mut results = Vec::new();
    for run in 0..runs {
        // A fresh daemon each run: peak RSS belongs to this run alone.
        let r = one_run(bins, services, lines);
        eprintln!(
            "run {}: {services} service(s) x {lines} lines: {} lines in {:.3} s = {:.0} lines/s, \
             {} missed, daemon VmHWM {:.1} MiB",
            run + 1,
            r.lines,
            r.elapsed.as_secs_f64(),
            rate(&r),
            r.missed,
            r.hwm_kib as f64 / 1024.0
        );
        results.push(r);
    }
    let what = if services == 1 {
        format!("1 service x {lines} lines")
    } else {
        format!("{services} services x {lines} lines, merged")
    };
    rate_rows(&what, &results, target, rows);
    let missed: u64 = results.iter().map(|r| r.missed).max().unwrap_or(0);
    rows.push((
        "  lines missed by the client (worst run)".into(),
        missed.to_string(),
        String::new(),
    ));
    let hwm = results.iter().map(|r| r.hwm_kib).max().unwrap_or(0);
    rows.push((
        "  daemon peak RSS (VmHWM, worst run)".into(),
        format!("{:.1} MiB", hwm as f64 / 1024.0),
        "< 100 MiB".into(),
    ));
}

/// Median and p99 (nearest rank, the slow side: with few runs, the slowest) of the
/// runs' delivery rates.
fn rate_rows(
    what: &str,
    results: &[RunResult],
    target: &str,
    rows: &mut Vec<(String, String, String)>,
) {
    let mut rates: Vec<f64> = results.iter().map(rate).collect();
    rates.sort_by(f64::total_cmp);
    // The slow tail of throughput is the low end: p99 of the time per line.
    rates.reverse();
    let median = quantile(&rates, 0.5);
    let p99 = quantile(&rates, 0.99);
    rows.push((
        format!("{what}, median of {}", results.len()),
        format!("{median:.0} lines/s"),
        target.into(),
    ));
    rows.push((
        format!("{what}, p99 (slowest run)"),
        format!("{p99:.0} lines/s"),
        String::new(),
    ));
}

/// The single burst printed by a pod and read by `kubectl logs -f`: the comparison
/// the issue asks for, on a cluster (tests/cluster; never started by this bench).
fn kubectl_case(opts: &Opts, rows: &mut Vec<(String, String, String)>) {
    let kubectl = devenv_e2e::kube::kubectl();
    let kc = |args: &[&str]| {
        std::process::Command::new(&kubectl)
            .args(["-n", &opts.kube_namespace])
            .args(args)
            .output()
            .expect("run kubectl")
    };
    let mut results = Vec::new();
    for run in 0..opts.runs {
        let pod = format!("bench-logs-{}-{run}", std::process::id());
        // Waits for a file the bench creates once it follows, then floods stdout.
        let script = format!(
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; yes '{LINE}' | head -n {}; sleep 3600",
            opts.lines
        );
        let out = kc(&[
            "run",
            &pod,
            "--image",
            &opts.kube_image,
            "--image-pull-policy=IfNotPresent",
            "--restart=Never",
            "--command",
            "--",
            "sh",
            "-c",
            &script,
        ]);
        assert!(
            out.status.success(),
            "kubectl run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ready = kc(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=120s",
        ]);
        assert!(
            ready.status.success(),
            "pod {pod} not ready: {}",
            String::from_utf8_lossy(&ready.stderr)
        );
        let mut client = std::process::Command::new(&kubectl)
            .args(["-n", &opts.kube_namespace, "logs", "-f", &pod])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl logs -f");
        let stdout = client.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let counter = std::thread::spawn(move || count_lines(stdout, tx));
        let go = kc(&["exec", &pod, "--", "touch", "/tmp/go"]);
        assert!(
            go.status.success(),
            "kubectl exec: {}",
            String::from_utf8_lossy(&go.stderr)
        );
        let got = drain(&rx, opts.lines);
        let _ = client.kill();
        let _ = client.wait();
        let _ = counter.join();
        let _ = kc(&["delete", "pod", &pod, "--wait=false"]);
        let r = RunResult {
            lines: got.lines,
            missed: opts.lines.saturating_sub(got.lines),
            elapsed: got
                .last
                .saturating_duration_since(got.first.unwrap_or(got.last)),
            hwm_kib: 0,
        };
        eprintln!(
            "kubectl run {}: {} lines in {:.3} s = {:.0} lines/s, {} not received",
            run + 1,
            r.lines,
            r.elapsed.as_secs_f64(),
            rate(&r),
            r.missed
        );
        results.push(r);
    }
    rate_rows(
        &format!("kubectl logs -f, 1 pod x {} lines", opts.lines),
        &results,
        "(comparison)",
        rows,
    );
    let missed = results.iter().map(|r| r.missed).max().unwrap_or(0);
    rows.push((
        "  lines not received by kubectl (worst run)".into(),
        missed.to_string(),
        String::new(),
    ));
}

/// Progress until `expected` lines (or markers' counts) came, or nothing new came
/// for 5 s after the first line.
fn drain(rx: &mpsc::Receiver<Progress>, expected: u64) -> Progress {
    let mut got = Progress::default();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(p) => {
                got = p;
                if got.lines + got.missed >= expected {
                    return got;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return got,
            Err(_) if got.lines > 0 => return got,
            Err(_) if Instant::now() > deadline => return got,
            Err(_) => {}
        }
    }
}

fn rate(r: &RunResult) -> f64 {
    r.lines as f64 / r.elapsed.as_secs_f64().max(1e-9)
}

fn one_run(bins: &'static Bins, services: usize, lines: u64) -> RunResult {
    let env = TestEnv::with_bins(bins);
    let gates: Vec<PathBuf> = (0..services)
        .map(|i| env.root().join(format!("gate-{i}")))
        .collect();
    for g in &gates {
        nix::unistd::mkfifo(g, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    }
    env.write_config(&config(&gates, lines));
    env.devenv_ok(&["up"]);
    let pid = env.daemon_pid();
    let names: Vec<String> = (0..services).map(name).collect();

    // The client, following only new lines of every generator.
    // Not `--tail 0`: the snapshot's "started" lines show that it is subscribed.
    let mut args: Vec<&str> = vec!["logs", "-f"];
    args.extend(names.iter().map(String::as_str));
    let mut client = env.spawn_devenv(&args);
    let stdout = client.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let counter = std::thread::spawn(move || count_lines(stdout, tx));
    // The daemon subscribes a follower before it sends the snapshot.
    let mut got = Progress::default();
    while got.other == 0 {
        got = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("devenv logs -f prints the snapshot");
    }

    // Open every gate (each open waits for its service to be waiting), then release
    // all services at once.
    let opened: Vec<std::fs::File> = gates
        .iter()
        .map(|g| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(g)
                .expect("open gate")
        })
        .collect();
    drop(opened);

    let expected = lines * services as u64;
    // Nothing new for a while: whatever was missed will not come.
    let got = drain(&rx, expected);
    let hwm_kib = read_hwm_kib(pid).unwrap_or(0);
    let _ = client.kill();
    let _ = client.wait();
    let _ = counter.join();
    RunResult {
        lines: got.lines,
        missed: got.missed,
        elapsed: got
            .last
            .saturating_duration_since(got.first.unwrap_or(got.last)),
        hwm_kib,
    }
}

fn name(i: usize) -> String {
    format!("gen{i:02}")
}

fn config(gates: &[PathBuf], lines: u64) -> String {
    let mut yaml = String::from(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: benchlogs\nspec:\n  services:\n",
    );
    for (i, gate) in gates.iter().enumerate() {
        // Waits at its gate (a fifo) until the bench opens it, then floods stdout.
        yaml.push_str(&format!(
            "    - name: {}\n      command: \"cat {} >/dev/null; yes '{LINE}' | head -n {lines}\"\n",
            name(i),
            gate.display()
        ));
    }
    yaml
}

#[derive(Debug, Clone, Copy)]
struct Progress {
    lines: u64,
    missed: u64,
    /// Other lines (the snapshot's, devenv's own).
    other: u64,
    first: Option<Instant>,
    last: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            lines: 0,
            missed: 0,
            other: 0,
            first: None,
            last: Instant::now(),
        }
    }
}

/// Counts generator lines arriving at the client, and the lines that its missed
/// markers say it skipped; reports progress whenever the pipe is drained, at
/// least every 10 ms while it is not, and at the end.
fn count_lines(mut out: impl Read, tx: mpsc::Sender<Progress>) {
    let mut buf = vec![0u8; 1 << 20];
    let mut p = Progress::default();
    let mut reported = Instant::now();
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        partial.extend_from_slice(&buf[..n]);
        let end = partial
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let before = p.lines + p.other;
        for line in partial[..end]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
        {
            if line.ends_with(b"0123456789") {
                p.lines += 1;
                p.first.get_or_insert(now);
                p.last = now;
            } else if let Some(n) = skipped(line) {
                p.missed += n;
            } else {
                p.other += 1;
            }
        }
        partial.drain(..end);
        let first_other = before == 0 && p.other > 0;
        // A short read emptied the pipe: report now, or the last lines of a burst
        // (up to 10 ms of them) would wait for the next read, which a follow that
        // has nothing more to print never brings.
        let drained = n < buf.len();
        if first_other || drained || now.duration_since(reported) > Duration::from_millis(10) {
            reported = now;
            if tx.send(p).is_err() {
                return;
            }
        }
    }
    let _ = tx.send(p);
}

/// `N` of a `... N lines skipped` marker line.
fn skipped(line: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(line).ok()?;
    let i = s.find(" lines skipped")?;
    s[..i].rsplit(' ').next()?.parse().ok()
}
