//! Benchmarks of the release binaries: `devenv status` latency, daemon idle RSS and
//! idle CPU. See docs/benchmarks.md.
//!
//!   cargo run --release -p devenv-e2e --bin devenv-bench -- [status|idle|all]
//!       [--runs N] [--idle-seconds N]

use std::time::{Duration, Instant};

use devenv_e2e::bench::print_table;
use devenv_e2e::{read_cpu_ticks, read_rss_kib, Bins, Profile, TestEnv};

struct Opts {
    what: String,
    runs: usize,
    idle_seconds: u64,
}

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        what: "all".into(),
        runs: 200,
        idle_seconds: 60,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "status" | "idle" | "all" => opts.what = a,
            "--runs" => opts.runs = num("--runs")?.max(1) as usize,
            "--idle-seconds" => opts.idle_seconds = num("--idle-seconds")?,
            "-h" | "--help" => {
                return Err(
                    "usage: devenv-bench [status|idle|all] [--runs N] [--idle-seconds N]".into(),
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
    // One environment for everything: the example up, the daemon warm.
    let mut env = TestEnv::with_bins(bins);
    env.quickstart();
    let up = env.devenv(&["up"]);
    if up.code != Some(0) {
        eprintln!("cannot bring the quickstart example up:\n{up}");
        std::process::exit(1);
    }
    let pid = env.daemon_pid();

    if opts.what == "status" || opts.what == "all" {
        bench_status(&env, opts.runs, &mut rows);
    }
    if opts.what == "idle" || opts.what == "all" {
        bench_idle(pid, opts.idle_seconds, &mut rows);
    }
    let down = env.devenv(&["down"]);
    if down.code != Some(0) {
        eprintln!("warning: down failed:\n{down}");
    }

    print_table("devenv-bench", &rows);
}

fn bench_status(env: &TestEnv, runs: usize, rows: &mut Vec<(String, String, String)>) {
    // Warm up: page cache, daemon connections.
    for _ in 0..5 {
        env.devenv_ok(&["status"]);
    }
    let vars = env.env_vars();
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        // Spawn directly (not the harness' polling runner): process start to exit.
        let start = Instant::now();
        let status = std::process::Command::new(&env.bins.devenv)
            .arg("status")
            .current_dir(&env.project)
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run devenv status");
        times.push(start.elapsed());
        assert!(status.success(), "devenv status failed: {status}");
    }
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    rows.push((
        format!("`devenv status` median ({runs} runs)"),
        ms(pct(0.5)),
        "< 5 ms".into(),
    ));
    rows.push(("`devenv status` p99".into(), ms(pct(0.99)), String::new()));
    rows.push(("`devenv status` min".into(), ms(times[0]), String::new()));
}

fn bench_idle(pid: u32, idle_seconds: u64, rows: &mut Vec<(String, String, String)>) {
    // RSS after 5 s of idling with the example up.
    std::thread::sleep(Duration::from_secs(5));
    let rss = read_rss_kib(pid).expect("daemon VmRSS");
    rows.push((
        "daemon RSS, example up, idle 5 s".into(),
        format!("{:.1} MiB", rss as f64 / 1024.0),
        String::new(),
    ));

    let ticks_per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let before = read_cpu_ticks(pid).expect("daemon stat");
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_seconds));
    let after = read_cpu_ticks(pid).expect("daemon stat");
    let wall = start.elapsed().as_secs_f64();
    let cpu = (after - before) as f64 / ticks_per_s;
    rows.push((
        format!("daemon CPU idle over {idle_seconds} s"),
        format!("{:.3} %", 100.0 * cpu / wall),
        format!("({cpu:.2} s CPU)"),
    ));
}
