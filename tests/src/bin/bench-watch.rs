//! File watching of the release binaries: save -> local process restarted and ready
//! (median/p99 over N saves, also less the process's own start time), and watcher
//! set-up time, RSS and idle CPU for a large tree. See docs/benchmarks.md.
//!
//!   cargo run --release -p devenv-e2e --bin bench-watch -- [save|tree|all]
//!       [--saves N] [--dirs N] [--files N] [--server self|python]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use devenv_e2e::bench::{print_table, Sample};
use devenv_e2e::{free_ports, read_cpu_ticks, read_rss_kib, Bins, Profile, TestEnv};

/// A minimal HTTP server in python (`--server python`): its start is python's own
/// start-up (`-S`: no site packages).
const SERVER: &str = r#"import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.close()
"#;

struct Opts {
    what: String,
    /// `self`: this program as the server (starts in about a millisecond, so the
    /// figures are devenv's own); `python`: [`SERVER`].
    server: String,
    saves: usize,
    dirs: usize,
    files: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        what: "all".into(),
        server: "self".into(),
        saves: 100,
        dirs: 10_000,
        files: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "save" | "tree" | "all" => opts.what = a,
            "--saves" => opts.saves = num("--saves")?.max(1),
            "--dirs" => opts.dirs = num("--dirs")?.max(1),
            "--files" => opts.files = num("--files")?,
            "--server" => {
                opts.server = args.next().unwrap_or_default();
                if opts.server != "self" && opts.server != "python" {
                    return Err("--server is self or python".into());
                }
            }
            "-h" | "--help" => {
                return Err(
                    "usage: bench-watch [save|tree|all] [--saves N] [--dirs N] [--files N] \
                     [--server self|python]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(opts)
}

type Rows = Vec<(String, String, String)>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__serve") {
        serve(args.get(2).and_then(|p| p.parse().ok()).unwrap_or(0));
    }
    let opts = match parse_args() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let bins = Bins::get(Profile::Release);
    let mut rows = Rows::new();
    if opts.what == "save" || opts.what == "all" {
        bench_save(bins, opts.saves, &opts.server, &mut rows);
    }
    if opts.what == "tree" || opts.what == "all" {
        bench_tree(bins, opts.dirs, opts.files, &mut rows);
    }
    print_table("bench-watch", &rows);
}

/// `bench-watch __serve PORT`: answers every request with 200.
fn serve(port: u16) -> ! {
    // std sets SO_REUSEADDR: the next instance binds while this one's sockets linger.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
    for conn in listener.incoming() {
        let Ok(mut c) = conn else { continue };
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
    std::process::exit(0)
}

/// The server's command line, as argv.
fn server_argv(server: &str, port: u16) -> Vec<String> {
    match server {
        "python" => ["python3", "-S", "server.py"]
            .iter()
            .map(|s| s.to_string())
            .chain([port.to_string()])
            .collect(),
        _ => vec![
            std::env::current_exe()
                .expect("current exe")
                .display()
                .to_string(),
            "__serve".into(),
            port.to_string(),
        ],
    }
}

fn ms(v: f64) -> String {
    format!("{v:.1} ms")
}

/// Milliseconds since the epoch, as the daemon stamps log lines.
fn epoch_ms(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// One line of `devenv --json logs -f`: (service, stream, text, time in epoch ms).
type LogEvent = (String, String, String, f64);

/// Follows the env's log in the background; lines arrive on the returned channel.
fn follow_logs(env: &TestEnv) -> (std::process::Child, mpsc::Receiver<LogEvent>) {
    let mut child = env.spawn_devenv(&["--json", "logs", "-f"]);
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let time = v["time"].as_str().and_then(rfc3339_ms).unwrap_or(0.0);
            let ev = (
                v["service"].as_str().unwrap_or_default().to_string(),
                v["stream"].as_str().unwrap_or_default().to_string(),
                v["line"].as_str().unwrap_or_default().to_string(),
                time,
            );
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Milliseconds since the epoch of `2026-11-22T21:47:15.456Z`.
fn rfc3339_ms(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let frac: f64 = format!("0.{frac}").parse().ok()?;
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(secs as f64 * 1000.0 + frac * 1000.0)
}

/// Waits for a system line of `service` satisfying `pred`; its time.
fn next_line(
    rx: &mpsc::Receiver<LogEvent>,
    service: &str,
    pred: impl Fn(&str) -> bool,
) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let (svc, stream, line, time) = rx.recv_timeout(left).ok()?;
        if svc == service && stream == "system" && pred(&line) {
            return Some(time);
        }
    }
}

fn http_ok(port: u16) -> bool {
    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if c.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(c.read(&mut buf), Ok(n) if n > 12 && buf.starts_with(b"HTTP/1.0 200"))
}

/// The server's own start-to-ready time: spawned directly, polled every 0.2 ms.
fn own_start(dir: &Path, argv: &[String], port: u16, runs: usize) -> Sample {
    let mut sample = Sample::default();
    for _ in 0..runs {
        let t0 = Instant::now();
        let mut child = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(dir)
            .spawn()
            .expect("spawn the server");
        while !http_ok(port) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the server did not start"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        sample.push(t0.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }
    sample
}

fn bench_save(bins: &'static Bins, saves: usize, server: &str, rows: &mut Rows) {
    let env = TestEnv::with_bins(bins);
    let port = free_ports(1)[0];
    let app = env.project.join("app");
    std::fs::create_dir_all(&app).expect("mkdir app");
    std::fs::write(app.join("server.py"), SERVER).expect("write server.py");
    std::fs::write(app.join("main.py"), "v = 0\n").expect("write main.py");

    let argv = server_argv(server, port);
    let own = own_start(&app, &argv, port, 30);
    let command = serde_json::to_string(&argv).expect("argv as JSON");

    env.write_config(&format!(
        "apiVersion: devenv/v1
kind: Environment
metadata:
  name: benchwatch
spec:
  services:
    - name: web
      command: {command}
      workdir: ./app
      readiness: {{ http: {{ path: /, port: {port} }}, periodSeconds: 1 }}
      watch: {{ paths: [./app], action: restart }}
"
    ));
    env.devenv_ok(&["up"]);
    let (mut follower, rx) = follow_logs(&env);
    // The follower is attached once it sees a line: ask for one.
    let probe_file = app.join("main.py");
    let mut total = Sample::default();
    let mut detect = Sample::default();
    let mut restart = Sample::default();
    let mut ready = Sample::default();
    for i in 0..saves + 1 {
        let t0 = SystemTime::now();
        std::fs::write(&probe_file, format!("v = {i}\n")).expect("save");
        let saved = epoch_ms(t0);
        let restarting = next_line(&rx, "web", |l| l.ends_with(": restarting"));
        let started = next_line(&rx, "web", |l| l.starts_with("started (pid "));
        let is_ready = next_line(&rx, "web", |l| l == "ready");
        let (Some(restarting), Some(started), Some(is_ready)) = (restarting, started, is_ready)
        else {
            panic!("save {i} did not restart web to ready");
        };
        if i == 0 {
            // Warm-up: the follower may have attached during this one.
            continue;
        }
        let ms_dur = |a: f64, b: f64| Duration::from_secs_f64(((b - a).max(0.0)) / 1000.0);
        total.push(ms_dur(saved, is_ready));
        detect.push(ms_dur(saved, restarting));
        restart.push(ms_dur(restarting, started));
        ready.push(ms_dur(started, is_ready));
    }
    let _ = follower.kill();
    let _ = follower.wait();
    env.devenv_ok(&["down"]);

    let own_p50 = own.median();
    let beyond: Vec<f64> = total.sorted().iter().map(|t| t - own_p50).collect();
    let beyond = Sample(beyond);
    rows.push((
        format!("{server} server's own start-to-ready, p50 (30 runs)"),
        ms(own_p50),
        String::new(),
    ));
    rows.push((
        format!("save -> restarted and ready, p50 ({saves} saves)"),
        ms(total.median()),
        String::new(),
    ));
    rows.push((
        "save -> restarted and ready, p99".into(),
        ms(total.p99()),
        String::new(),
    ));
    rows.push((
        "  beyond the server's own start, p50".into(),
        ms(beyond.median()),
        "< 30 ms".into(),
    ));
    rows.push((
        "  beyond the server's own start, p99".into(),
        ms(beyond.p99()),
        String::new(),
    ));
    rows.push((
        "  save -> change seen (debounced), p50".into(),
        ms(detect.median()),
        String::new(),
    ));
    rows.push((
        "  change seen -> new process spawned, p50".into(),
        ms(restart.median()),
        String::new(),
    ));
    rows.push((
        "  spawned -> ready (probe), p50".into(),
        ms(ready.median()),
        String::new(),
    ));
}

fn bench_tree(bins: &'static Bins, dirs: usize, files: usize, rows: &mut Rows) {
    let env = TestEnv::with_bins(bins);
    let tree = env.project.join("tree");
    let t0 = Instant::now();
    // Two levels: ~sqrt(dirs) directories of ~sqrt(dirs) each.
    let fan = (dirs as f64).sqrt().ceil() as usize;
    let mut made = 0;
    'outer: for a in 0..fan {
        for b in 0..fan {
            if made == dirs {
                break 'outer;
            }
            let d = tree.join(format!("d{a:03}")).join(format!("e{b:03}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            for f in 0..files {
                std::fs::write(d.join(format!("f{f}.txt")), "x").expect("write");
            }
            made += 1;
        }
    }
    // Trees the watch must not enter: ignored, and their size must not matter.
    std::fs::write(tree.join(".gitignore"), "node_modules/\n").expect(".gitignore");
    for i in 0..100 {
        std::fs::create_dir_all(tree.join("node_modules").join(format!("m{i}")))
            .expect("mkdir node_modules");
    }
    eprintln!(
        "bench-watch: made {made} directories x {files} files in {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    // The daemon first runs an environment without watching, for a baseline RSS.
    env.write_config(
        "apiVersion: devenv/v1
kind: Environment
metadata:
  name: benchtree
spec:
  services:
    - name: big
      command: exec sleep 100000
",
    );
    env.devenv_ok(&["up"]);
    let daemon = env.daemon_pid();
    let rss_before = read_rss_kib(daemon).unwrap_or(0);
    env.devenv_ok(&["down"]);

    env.write_config(
        "apiVersion: devenv/v1
kind: Environment
metadata:
  name: benchtree
spec:
  services:
    - name: big
      command: exec sleep 100000
      watch: { paths: [./tree], action: restart }
",
    );
    let up_started = Instant::now();
    env.devenv_ok(&["up"]);
    let up_took = up_started.elapsed();
    let out = env.devenv_ok(&["logs", "big"]).stdout;
    let line = out
        .lines()
        .find(|l| l.contains("watching ./tree for changes"))
        .unwrap_or_else(|| panic!("no set-up line in the log:\n{out}"))
        .to_string();
    let setup_ms: f64 = line
        .split("set up in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    let watched: String = line
        .split("for changes (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or("?")
        .to_string();
    let rss_after = read_rss_kib(daemon).unwrap_or(0);

    // Idle with the tree watched: nothing should run.
    let idle = Duration::from_secs(5);
    let ticks0 = read_cpu_ticks(daemon).unwrap_or(0);
    std::thread::sleep(idle);
    let ticks1 = read_cpu_ticks(daemon).unwrap_or(0);
    let cpu_pct = (ticks1.saturating_sub(ticks0)) as f64 / 100.0 / idle.as_secs_f64() * 100.0;

    // A save deep in the big tree still restarts at once.
    let (mut follower, rx) = follow_logs(&env);
    let deep = tree.join("d000").join("e000").join("f0.txt");
    let mut save = Sample::default();
    for i in 0..6 {
        let t0 = SystemTime::now();
        std::fs::write(&deep, format!("{i}")).expect("save");
        let saved = epoch_ms(t0);
        let seen = next_line(&rx, "big", |l| l.ends_with(": restarting"));
        let _ = next_line(&rx, "big", |l| l == "ready");
        if i > 0 {
            let seen = seen.expect("a restart for the deep save");
            save.push(Duration::from_secs_f64((seen - saved).max(0.0) / 1000.0));
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    env.devenv_ok(&["down"]);

    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    rows.push((
        format!("tree: {made} dirs x {files} files, directories watched"),
        watched,
        String::new(),
    ));
    rows.push((
        "tree: watcher set-up (walk + watches)".into(),
        ms(setup_ms),
        "< 1 s".into(),
    ));
    rows.push((
        "tree: `devenv up` wall time".into(),
        ms(up_took.as_secs_f64() * 1000.0),
        String::new(),
    ));
    rows.push((
        "tree: daemon RSS without / with the watch".into(),
        format!("{} / {}", mib(rss_before), mib(rss_after)),
        String::new(),
    ));
    rows.push((
        format!("tree: daemon CPU idle over {}s", idle.as_secs()),
        format!("{cpu_pct:.2} %"),
        "~0 %".into(),
    ));
    rows.push((
        "tree: deep save -> change seen, p50 (5 saves)".into(),
        ms(save.median()),
        String::new(),
    ));
}
