//! bench-graph: devenv's orchestration overhead on a 50-service graph, side by side
//! with process-compose on the same stack.
//!
//! ```sh
//! scripts/install-bench-tools.sh            # process-compose, once
//! cargo run --release -p devenv-e2e --bin bench-graph -- [--runs N] [--no-peer]
//! ```
//!
//! Stacks: `wide` is 5 layers of 10 `sleep 1000` services with no readiness probe (so
//! ready when started), each service depending on every service of the layer before;
//! `chain` is its critical path alone, 5 services in a line. Per-service overhead is
//! `(wide - chain) / 45`, per run: the time the 45 services off the critical path add.
//! See docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use devenv_e2e::bench::Sample;
use devenv_e2e::{free_ports, http_get, wait_until, Bins, Profile, TestEnv};

const LAYERS: usize = 5;
const WIDTH: usize = 10;
const COMMAND: &str = "sleep 1000";

#[derive(Debug)]
struct Opts {
    runs: usize,
    peer: bool,
}

fn parse_args() -> Opts {
    let mut opts = Opts {
        runs: 20,
        peer: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => {
                opts.runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage("--runs needs a positive number"));
            }
            "--no-peer" => opts.peer = false,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    opts
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("bench-graph: {err}");
    }
    eprintln!("usage: bench-graph [--runs N] [--no-peer]");
    std::process::exit(if err.is_empty() { 0 } else { 2 });
}

/// A stack: service names with their dependencies, in start order.
struct Stack {
    name: &'static str,
    services: Vec<(String, Vec<String>)>,
}

fn wide() -> Stack {
    let name = |l: usize, i: usize| format!("l{l}-{i}");
    let services = (1..=LAYERS)
        .flat_map(|l| {
            (0..WIDTH).map(move |i| {
                let deps = if l == 1 {
                    Vec::new()
                } else {
                    (0..WIDTH).map(|j| name(l - 1, j)).collect()
                };
                (name(l, i), deps)
            })
        })
        .collect();
    Stack {
        name: "wide",
        services,
    }
}

fn chain() -> Stack {
    let services = (1..=LAYERS)
        .map(|l| {
            let deps = if l == 1 {
                Vec::new()
            } else {
                vec![format!("c{}", l - 1)]
            };
            (format!("c{l}"), deps)
        })
        .collect();
    Stack {
        name: "chain",
        services,
    }
}

fn devenv_yaml(stack: &Stack) -> String {
    let mut y = format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: bench-{}\nspec:\n  services:\n",
        stack.name
    );
    for (name, deps) in &stack.services {
        y.push_str(&format!("    - name: {name}\n      command: {COMMAND}\n"));
        if !deps.is_empty() {
            y.push_str(&format!("      dependencies: [{}]\n", deps.join(", ")));
        }
    }
    y
}

fn process_compose_yaml(stack: &Stack) -> String {
    let mut y = String::from("version: \"0.5\"\nprocesses:\n");
    for (name, deps) in &stack.services {
        y.push_str(&format!("  {name}:\n    command: {COMMAND}\n"));
        if !deps.is_empty() {
            y.push_str("    depends_on:\n");
            for d in deps {
                y.push_str(&format!("      {d}:\n        condition: process_started\n"));
            }
        }
    }
    y
}

/// Per-run `(wide - chain) / 45` in ms.
fn per_service(wide: &Sample, chain: &Sample) -> Sample {
    let extra = (LAYERS * WIDTH - LAYERS) as f64;
    Sample(
        wide.0
            .iter()
            .zip(&chain.0)
            .map(|(w, c)| (w - c) / extra)
            .collect(),
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write config");
}

fn devenv_cmd(env: &TestEnv, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(&env.bins.devenv);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.env_vars())
        .stdin(Stdio::null());
    cmd
}

/// `devenv up` in `dir`: wall time from spawn to exit (a blocking wait, so the exit is
/// seen at once). Output is discarded: `-q` prints nothing on success.
fn time_devenv_up(env: &TestEnv, dir: &Path) -> Duration {
    let start = Instant::now();
    let status = devenv_cmd(env, dir, &["-q", "up"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("run devenv up");
    let took = start.elapsed();
    assert!(
        status.success(),
        "devenv up in {} failed: {status}",
        dir.display()
    );
    took
}

fn devenv_check(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let out = devenv_cmd(env, dir, args).output().expect("run devenv");
    assert!(
        out.status.success(),
        "devenv {} failed: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_all_ready(env: &TestEnv, dir: &Path, n: usize) {
    let out = devenv_check(env, dir, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json");
    let states = devenv_e2e::service_states(&v);
    assert!(
        states.len() == n && states.values().all(|s| s == "ready"),
        "not all ready after up: {states:?}"
    );
}

/// From the daemon's own log (ms timestamps): first `started` to last `ready` of the
/// run that began at `since`: the engine's share, without the CLI and the RPC.
fn daemon_span(env: &TestEnv, dir: &Path, since: std::time::SystemTime) -> Option<Duration> {
    let since_ms = since
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    let out = devenv_check(env, dir, &["--json", "logs"]);
    let (mut first, mut last) = (u64::MAX, 0u64);
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v["stream"] != "system" {
            continue;
        }
        let Some(t) = v["time"].as_str().and_then(rfc3339_millis) else {
            continue;
        };
        if t < since_ms {
            continue;
        }
        match v["line"].as_str() {
            Some(l) if l.starts_with("started (pid ") => first = first.min(t),
            Some("ready") => last = last.max(t),
            _ => {}
        }
    }
    (first <= last).then(|| Duration::from_millis(last - first))
}

#[path = "../graph_support.rs"]
mod graph_support;
use graph_support::rfc3339_millis;

/// Floor for the host: spawning 50 `sh -c COMMAND` one after another from this process
/// and reaping them. devenv spawns from one thread as well.
fn raw_spawn(env: &TestEnv, runs: usize) -> Sample {
    use std::os::unix::process::CommandExt as _;
    // The daemon and its helpers; nothing of ours may stay beside them.
    let before = env.all_pids().len();
    let mut sample = Sample::default();
    for _ in 0..runs {
        let start = Instant::now();
        let mut children: Vec<Child> = (0..LAYERS * WIDTH)
            .map(|_| {
                // Own group, as devenv does: `sh -c` may fork `sleep` rather than exec it.
                Command::new("sh")
                    .args(["-c", COMMAND])
                    .env_clear()
                    .envs(env.env_vars())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .expect("spawn sh")
            })
            .collect();
        sample.push(start.elapsed());
        for c in &mut children {
            let pgid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = c.wait();
        }
    }
    let gone = wait_until(Duration::from_secs(10), || env.all_pids().len() <= before);
    assert!(
        gone,
        "spawned shells left processes behind: {:?}",
        env.all_pids()
    );
    sample
}

fn bench_devenv(
    env: &TestEnv,
    wide_dir: &Path,
    chain_dir: &Path,
    runs: usize,
) -> (Sample, Sample, Sample) {
    // Warm: the daemon is running and each environment has been loaded once.
    for (dir, n) in [(wide_dir, LAYERS * WIDTH), (chain_dir, LAYERS)] {
        time_devenv_up(env, dir);
        assert_all_ready(env, dir, n);
        devenv_check(env, dir, &["-q", "down"]);
    }
    let (mut w, mut c, mut span) = (Sample::default(), Sample::default(), Sample::default());
    for i in 0..runs {
        eprint!("\rdevenv: run {}/{runs}", i + 1);
        let since = std::time::SystemTime::now();
        w.push(time_devenv_up(env, wide_dir));
        if let Some(d) = daemon_span(env, wide_dir, since) {
            span.push(d);
        }
        assert_all_ready(env, wide_dir, LAYERS * WIDTH);
        devenv_check(env, wide_dir, &["-q", "down"]);
        c.push(time_devenv_up(env, chain_dir));
        assert_all_ready(env, chain_dir, LAYERS);
        devenv_check(env, chain_dir, &["-q", "down"]);
    }
    eprintln!();
    (w, c, span)
}

fn find_process_compose() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("PROCESS_COMPOSE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let tools = std::env::var_os("DEVENV_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/devenv-tools")));
    if let Some(p) = tools
        .map(|t| t.join("bin/process-compose"))
        .filter(|p| p.is_file())
    {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("process-compose"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            "process-compose not found ($PROCESS_COMPOSE, $DEVENV_TOOLS_DIR/bin, \
             ~/.cache/devenv-tools/bin, PATH); install it with scripts/install-bench-tools.sh \
             or pass --no-peer"
                .to_string()
        })
}

/// process-compose's view of its processes: how many are `Running`, `None` while its
/// HTTP server does not answer yet.
fn pc_running(port: u16) -> Option<usize> {
    let r = http_get(port, "/processes")?;
    if r.status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    Some(
        v["data"]
            .as_array()?
            .iter()
            .filter(|p| p["status"] == "Running")
            .count(),
    )
}

struct PcRun {
    took: Duration,
    polls: u32,
}

/// Starts process-compose headless on `config` and polls its REST API until all `n`
/// processes are Running; then stops it (SIGTERM to its process group) and waits until
/// every process it started is gone.
fn time_process_compose(pc: &Path, env: &TestEnv, dir: &Path, n: usize) -> PcRun {
    use std::os::unix::process::CommandExt as _;
    let port = free_ports(1)[0];
    let port_s = port.to_string();
    let log = dir.join("process-compose.log");
    let start = Instant::now();
    let mut child: Child = Command::new(pc)
        .args([
            "up",
            "-t=false",
            "-p",
            &port_s,
            "-f",
            "process-compose.yaml",
        ])
        .arg("-L")
        .arg(&log)
        .current_dir(dir)
        .env_clear()
        .envs(env.env_vars())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start process-compose");
    let mut polls = 0;
    let deadline = start + Duration::from_secs(60);
    let took = loop {
        polls += 1;
        if pc_running(port) == Some(n) {
            break start.elapsed();
        }
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!("process-compose exited early ({st}); see {}", log.display());
        }
        assert!(
            Instant::now() < deadline,
            "process-compose did not run all {n} in 60 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
    let exited = wait_until(Duration::from_secs(20), || {
        child.try_wait().ok().flatten().is_some() && env.all_pids().len() <= 1
    });
    if !exited {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    }
    // Only the devenv daemon may remain.
    let clean = wait_until(Duration::from_secs(10), || env.all_pids().len() <= 1);
    assert!(
        clean,
        "process-compose left processes behind: {:?}",
        env.all_pids()
    );
    PcRun { took, polls }
}

fn bench_peer(
    pc: &Path,
    env: &TestEnv,
    wide_dir: &Path,
    chain_dir: &Path,
    runs: usize,
) -> (Sample, Sample, f64) {
    time_process_compose(pc, env, wide_dir, LAYERS * WIDTH);
    time_process_compose(pc, env, chain_dir, LAYERS);
    let (mut w, mut c) = (Sample::default(), Sample::default());
    let (mut polls, mut total) = (0u32, Duration::ZERO);
    for i in 0..runs {
        eprint!("\rprocess-compose: run {}/{runs}", i + 1);
        let r = time_process_compose(pc, env, wide_dir, LAYERS * WIDTH);
        w.push(r.took);
        polls += r.polls;
        total += r.took;
        let r = time_process_compose(pc, env, chain_dir, LAYERS);
        c.push(r.took);
        polls += r.polls;
        total += r.took;
    }
    eprintln!();
    let per_poll = total.as_secs_f64() * 1000.0 / f64::from(polls.max(1));
    (w, c, per_poll)
}

fn main() {
    let opts = parse_args();
    let pc = if opts.peer {
        match find_process_compose() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("bench-graph: {e}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    let bins = Bins::get(Profile::Release);
    let env = TestEnv::with_bins(bins);
    let (wide, chain) = (wide(), chain());
    let wide_dir = env.project.join("wide");
    let chain_dir = env.project.join("chain");
    write(&wide_dir.join(".devenv/config.yml"), &devenv_yaml(&wide));
    write(&chain_dir.join(".devenv/config.yml"), &devenv_yaml(&chain));
    write(
        &wide_dir.join("process-compose.yaml"),
        &process_compose_yaml(&wide),
    );
    write(
        &chain_dir.join("process-compose.yaml"),
        &process_compose_yaml(&chain),
    );

    let (dw, dc, dspan) = bench_devenv(&env, &wide_dir, &chain_dir, opts.runs);
    let raw = raw_spawn(&env, opts.runs);
    let dp = per_service(&dw, &dc);
    // The daemon goes before the peer runs: each measures alone.
    devenv_check(&env, &env.project, &["-q", "daemon", "stop"]);

    let peer = pc.map(|pc| {
        let (w, c, per_poll) = bench_peer(&pc, &env, &wide_dir, &chain_dir, opts.runs);
        let p = per_service(&w, &c);
        (w, c, p, per_poll)
    });

    println!();
    println!(
        "bench-graph: {} runs; wide = {LAYERS} layers x {WIDTH} (`{COMMAND}`, no probe, each \
         depends on the whole layer before), chain = {LAYERS} in a line",
        opts.runs
    );
    println!();
    println!(
        "| metric | devenv median | devenv p99 | process-compose median | process-compose p99 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    let row = |label: &str, d: &Sample, p: Option<&Sample>, unit_ms: bool| {
        let f = |v: f64| {
            if unit_ms {
                format!("{v:.1} ms")
            } else {
                format!("{v:.2} ms")
            }
        };
        let (pm, pp) = p.map_or(("-".into(), "-".into()), |p| (f(p.median()), f(p.p99())));
        println!(
            "| {label} | {} | {} | {pm} | {pp} |",
            f(d.median()),
            f(d.p99())
        );
    };
    row("up -> all 50 ready", &dw, peer.as_ref().map(|p| &p.0), true);
    row(
        "up -> chain of 5 ready",
        &dc,
        peer.as_ref().map(|p| &p.1),
        true,
    );
    row(
        "per service: (wide - chain) / 45",
        &dp,
        peer.as_ref().map(|p| &p.2),
        false,
    );
    if !dspan.0.is_empty() {
        row(
            "devenv daemon: first started -> last ready (wide)",
            &dspan,
            None,
            true,
        );
    }
    row(
        "host floor: spawn 50 `sh -c` serially (no devenv)",
        &raw,
        None,
        true,
    );
    println!();
    println!("devenv: wall time of `devenv -q up` (daemon warm), exit seen by a blocking wait.");
    if let Some((_, _, _, per_poll)) = &peer {
        println!(
            "process-compose: spawn of `process-compose up -t=false` until GET /processes \
             shows all Running; polled every 1 ms + request time ({per_poll:.1} ms per poll on \
             average), so its times are over by up to one poll."
        );
    }
    let target = if dp.median() < 2.0 { "met" } else { "NOT met" };
    println!("devenv per-service overhead target (< 2 ms median): {target}");
}
