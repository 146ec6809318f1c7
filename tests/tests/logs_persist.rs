//! The log hub end to end: logs outlive the daemon, a stalled `logs -f` client is
//! told what it missed while the service runs on, and a flood of output leaves the
//! daemon's memory and disk bounded.

use std::io::Read;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use devenv_e2e::{read_rss_kib, wait_until, TestEnv};

fn config(services: &[(&str, &str)]) -> String {
    let mut yaml = String::from(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: logs\nspec:\n  services:\n",
    );
    for (name, command) in services {
        yaml.push_str(&format!(
            "    - name: {name}\n      command: {}\n",
            serde_json::to_string(command).expect("quote command")
        ));
    }
    yaml
}

/// `devenv logs ARGS` output lines, panicking unless it exits 0.
fn logs(env: &TestEnv, args: &[&str]) -> Vec<String> {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    let out = env.devenv_ok(&all);
    out.stdout.lines().map(str::to_string).collect()
}

/// The text of a `service | text` line.
fn text(line: &str) -> &str {
    line.split_once(" | ").map_or(line, |(_, t)| t)
}

#[test]
fn logs_survive_a_daemon_restart() {
    let env = TestEnv::new();
    env.write_config(&config(&[(
        "talker",
        "seq -f 'line %g' 1 500; exec sleep 100000",
    )]));
    env.devenv_ok(&["up"]);
    let done = wait_until(Duration::from_secs(30), || {
        logs(&env, &["talker", "--grep", "^line", "--tail", "1"])
            .iter()
            .any(|l| text(l) == "line 500")
    });
    assert!(done, "talker's output never reached `devenv logs`");

    env.devenv_ok(&["daemon", "stop"]);
    assert!(
        wait_until(Duration::from_secs(15), || !env.socket.exists()),
        "the daemon did not stop"
    );

    // The next command starts a fresh daemon, which reads the old logs back.
    let tail = logs(&env, &["talker", "--tail", "20"]);
    let texts: Vec<&str> = tail.iter().map(|l| text(l)).collect();
    assert!(
        texts.contains(&"line 500"),
        "--tail 20 after restart:\n{tail:#?}"
    );
    let since = logs(&env, &["talker", "--since", "1h", "--grep", "^line"]);
    let texts: Vec<&str> = since.iter().map(|l| text(l)).collect();
    let want: Vec<String> = (1..=500).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, want, "--since 1h after restart");
    let json = env.devenv_ok(&[
        "logs", "talker", "--tail", "600", "--json", "--grep", "^line 1$",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(json.stdout.trim()).unwrap_or_else(|e| panic!("{e}\n{json}"));
    assert_eq!(v["service"], "talker", "{json}");
    assert_eq!(v["stream"], "stdout", "{json}");
}

/// Reads a child's stdout on a thread; reports when `needle` shows up.
fn watch_for(child: &mut Child, needle: &'static str) -> mpsc::Receiver<String> {
    let mut out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut carry = String::new();
        loop {
            let n = match out.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            carry.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(line) = carry.lines().find(|l| l.contains(needle)) {
                let _ = tx.send(line.to_string());
                return;
            }
            // Keep a possibly cut last line only.
            let keep = carry.rfind('\n').map_or(0, |i| i + 1);
            carry.drain(..keep);
        }
    });
    rx
}

/// The counter a `seq` service printed last.
fn latest(env: &TestEnv, service: &str) -> u64 {
    logs(env, &[service, "--tail", "1", "--grep", "^[0-9]+$"])
        .last()
        .and_then(|l| text(l).parse().ok())
        .unwrap_or(0)
}

#[test]
fn stalled_follower_gets_a_missed_marker_while_the_service_runs_on() {
    let env = TestEnv::new();
    env.write_config(&config(&[("counter", "seq 1 1000000000")]));
    env.devenv_ok(&["up"]);

    // A follower whose output nobody reads: its pipe fills and it stalls.
    let mut follower = env.spawn_devenv(&["logs", "-f", "counter"]);

    // The service keeps writing at full speed regardless.
    let start = latest(&env, "counter");
    let ran_on = wait_until(Duration::from_secs(60), || {
        latest(&env, "counter") > start + 1_000_000
    });
    let now = latest(&env, "counter");
    assert!(
        ran_on,
        "counter stalled at {now} (from {start}) while a client stalled"
    );

    // Once it reads again, the client learns how much it missed.
    let marker = watch_for(&mut follower, "lines skipped");
    let got = marker.recv_timeout(Duration::from_secs(60));
    let _ = follower.kill();
    let _ = follower.wait();
    let line = got.expect("the stalled follower got no `lines skipped` marker");
    let n: u64 = line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("marker names no count: {line}"));
    assert!(n > 0, "{line}");
}

/// Peak resident set size of a process.
fn read_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// Bytes the flood writes; set DEVENV_E2E_FLOOD_BYTES for a bigger manual run.
fn flood_bytes() -> u64 {
    std::env::var("DEVENV_E2E_FLOOD_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000_000)
}

#[test]
fn a_flood_of_output_leaves_memory_and_disk_bounded() {
    const RSS_CAP_KIB: u64 = 150 * 1024;
    // Per service: 64 MiB of segments, plus the one being written.
    const DISK_CAP: u64 = (64 + 8 + 1) << 20;
    let env = TestEnv::new();
    let bytes = flood_bytes();
    let line = "a log line of a realistic length, as services tend to print: 0123456789";
    let lines = bytes / (line.len() as u64 + 1);
    let command = format!("yes '{line}' | head -n {lines}; echo FLOOD-DONE; exec sleep 100000");
    env.write_config(&config(&[("flood", &command)]));
    env.devenv_ok(&["up"]);
    let pid = env.daemon_pid();

    let started = Instant::now();
    let done = wait_until(Duration::from_secs(600), || {
        logs(&env, &["flood", "--tail", "1"])
            .iter()
            .any(|l| text(l) == "FLOOD-DONE")
    });
    assert!(
        done,
        "the flood did not finish within {:?}",
        started.elapsed()
    );
    let peak = read_hwm_kib(pid).expect("daemon VmHWM");
    let now = read_rss_kib(pid).unwrap_or(0);
    eprintln!(
        "flood of {bytes} bytes took {:?}; daemon VmHWM {peak} KiB, VmRSS {now} KiB",
        started.elapsed()
    );
    assert!(
        peak < RSS_CAP_KIB,
        "daemon RSS reached {peak} KiB during a {bytes}-byte flood"
    );
    let disk = dir_bytes(&env.data_dir.join("logs"));
    assert!(disk < DISK_CAP, "{disk} bytes of logs on disk");
}
