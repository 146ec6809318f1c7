//! The log hub end to end: logs outlive the daemon, and a flood of output leaves the
//! daemon's memory and disk bounded. (Slow followers: logs_follow.rs.)

use std::path::Path;
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
