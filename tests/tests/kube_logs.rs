//! Pod logs lose nothing silently (issue 21 part 4), against the real test cluster: a
//! pod prints 2M numbered lines (past containerd's 10 MiB log rotation) and `devenv
//! logs` has every one of them once, in order, or, where the kubelet rotated lines
//! away before devenv read them (it keeps containerLogMaxFiles x containerLogMaxSize,
//! 5 x 10 MiB here, and the burst is ~90 MB), one gap line exactly where they are
//! missing. The daemon reads the kubelet's stream with timestamps, reopens it from
//! its last line when it breaks or stalls, and reads what the stream skipped from the
//! node's newest rotated file (the kubelet's `/logs/` handler, via nodes/proxy).
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::time::{Duration, Instant};

use devenv_e2e::kube::env_for;
use devenv_e2e::wait_until;
use devenv_e2e::RunOpts;

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";
const LINES: u64 = 2_000_000;
/// How devenv's line for lines it could not read begins (podlogs::GAP_MARK).
const GAP: &str = "[devenv] pod log gap:";

/// What the numbered lines `1..=lines` (and gap lines) in `devenv logs` output show.
#[derive(Debug, Default)]
struct Figures {
    /// Numbered lines seen, once each and in order.
    lines: u64,
    /// Gap lines.
    gaps: u64,
    /// Lines missing where a gap line stands.
    missing_under_gaps: u64,
    /// Gap lines where no line was missing (the reader had finished the file).
    gaps_with_nothing_missing: u64,
    /// Missing lines with no gap line, repeats, disorder: each a failure.
    errors: Vec<String>,
}

/// Every line once and in order, or a gap line exactly where lines are missing.
fn check_numbered(stdout: &str, lines: u64) -> Figures {
    let mut f = Figures::default();
    let mut next = 1u64;
    let mut gap = false;
    for line in stdout.lines() {
        let text = line.split_once(" | ").map_or(line, |(_, t)| t);
        if text.starts_with(GAP) {
            f.gaps += 1;
            gap = true;
            continue;
        }
        let Ok(n) = text.parse::<u64>() else {
            f.errors.push(format!("not a number: {line}"));
            continue;
        };
        if n < next {
            f.errors
                .push(format!("got {n} again or out of order, expected {next}"));
            continue;
        }
        if n > next {
            if gap {
                f.missing_under_gaps += n - next;
            } else {
                f.errors.push(format!(
                    "got {n}, expected {next}: {} lines missing with no gap line",
                    n - next
                ));
            }
        } else if gap {
            f.gaps_with_nothing_missing += 1;
        }
        gap = false;
        f.lines += 1;
        next = n + 1;
    }
    if next <= lines {
        if gap {
            f.missing_under_gaps += lines + 1 - next;
        } else {
            f.errors
                .push(format!("lines {next}..={lines} missing with no gap line"));
        }
    }
    f.errors.truncate(10);
    f
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_pod_logs_arrive_once_and_in_order() {
    let (figures, daemon_log) = follow_burst("podlogs", LINES, None);
    assert!(figures.errors.is_empty(), "{figures:#?}");
    // Reads of the node's files that found nothing missing (the quiet check once
    // the current file is empty, a switch of files while behind) fetch the end
    // of an uncompressed file, not all of it (tens of MB here).
    for line in daemon_log
        .lines()
        .filter(|l| l.contains("rotated log files held no line"))
    {
        eprintln!("{line}");
        if line.contains(".gz\"") {
            continue;
        }
        let bytes: u64 = line
            .split_once(" bytes=")
            .and_then(|(_, b)| b.split(' ').next())
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("no bytes= in {line}"));
        assert!(
            bytes < 1 << 20,
            "{bytes} bytes fetched to find nothing: {line}"
        );
    }
}

/// devenv far behind while the kubelet rotates several times: the daemon is
/// stopped (SIGSTOP) for 30 s during the 2M-line burst (~95 MB in ~20 s: a
/// rotation at each 10 s check, the older rotated file gzipped by the kubelet; more
/// lines would pass devenv's own retention, 64 MiB per service). The kubelet's
/// reader, on the file devenv was reading, goes on with the newest file when it
/// reaches its end: the files between are read from the node, gzipped ones too.
#[test]
#[ignore = "needs the test cluster; not in tests/cluster/test.sh yet: a half line held across a jump over several rotated files can be joined to the stream's next line (see the comment there)"]
fn k8s_pod_logs_behind_several_rotations_read_gzipped_files() {
    let lines = LINES;
    let (figures, daemon_log) = follow_burst("podlogsgz", lines, Some(Duration::from_secs(30)));
    assert!(figures.errors.is_empty(), "{figures:#?}");
    assert_eq!(figures.gaps, 0, "{figures:#?}");
    assert_eq!(figures.lines, lines, "{figures:#?}");
    let read: Vec<&str> = daemon_log
        .lines()
        .filter(|l| l.contains("read from the node's rotated log files"))
        .collect();
    eprintln!("rotated-file reads:\n{}", read.join("\n"));
    assert!(
        read.iter().any(|l| !l.contains("gzipped=0")),
        "no line was read from a gzipped rotated file (was devenv behind by two rotations?)"
    );
}

/// A pod printing `seq 1 LINES` followed by `devenv logs`: the figures of what
/// arrived, and the daemon's log. `pause`: the daemon is stopped that long once
/// the burst has begun.
fn follow_burst(name: &str, lines: u64, pause: Option<Duration>) -> (Figures, String) {
    let (mut t, env) = env_for(name);
    // The reads of the node's files and their sizes.
    t.set_var("DEVENVD_LOG", "info,devenv_core::kube::podlogs=debug");
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
    - name: burst
      image: {BUSYBOX}
      command: "sleep 2; seq 1 {lines}; echo burst-done; exec sleep 100000"
"#
    ));
    let started = Instant::now();
    t.devenv_ok(&["up"]);
    if let Some(pause) = pause {
        let begun = wait_until(Duration::from_secs(60), || {
            !t.devenv_ok(&["logs", "burst", "--tail", "1"])
                .stdout
                .trim()
                .is_empty()
        });
        assert!(begun, "the burst's first line never reached devenv logs");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(t.daemon_pid()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
        // The daemon is stopped: nothing to poll; this is the pause itself.
        std::thread::sleep(pause);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    }
    // 2M lines through the kubelet: ~140 s on a busy 2-core machine (debug daemon).
    // Done when the last line arrived, or when a gap line is the last one and stays
    // so (the kubelet rotated the end of the burst away before devenv read it).
    let mut last_gap: Option<(String, Instant)> = None;
    let done = wait_until(Duration::from_secs(600), || {
        let last = t.devenv_ok(&["logs", "burst", "--tail", "1"]).stdout;
        if last.contains("burst-done") {
            return true;
        }
        if !last.contains(GAP) {
            last_gap = None;
            return false;
        }
        match &last_gap {
            Some((prev, at)) if *prev == last => at.elapsed() > Duration::from_secs(20),
            _ => {
                last_gap = Some((last, Instant::now()));
                false
            }
        }
    });
    assert!(
        done,
        "the pod's last line (or a gap line for it) never reached devenv logs"
    );
    // Every line after the environment's first position (not just the newest
    // 200,000 a snapshot returns), and devenv's gap lines.
    // Two million lines through a debug CLI take minutes on a loaded machine.
    let opts = RunOpts {
        timeout: Duration::from_secs(600),
        ..RunOpts::default()
    };
    let args = [
        "logs",
        "burst",
        "--after",
        "1",
        "--grep",
        r"^[0-9]+$|^\[devenv\] pod log gap:",
    ];
    let out = t.run(&t.bins.devenv, &args, opts);
    assert_eq!(out.code, Some(0), "devenv logs: {out}");
    let figures = check_numbered(&out.stdout, lines);
    eprintln!("pod log figures: {figures:?}");
    eprintln!(
        "devenv: burst followed in {:.1} s from up",
        started.elapsed().as_secs_f64()
    );
    let daemon_log = t.devenv_ok(&["daemon", "logs"]).stdout;
    t.devenv_ok(&["down"]);
    (figures, daemon_log)
}

#[test]
fn the_check_wants_a_gap_line_wherever_lines_are_missing() {
    let ok = check_numbered("a | 1\na | 2\na | 3\n", 3);
    assert!(ok.errors.is_empty() && ok.lines == 3 && ok.gaps == 0);
    let marked = check_numbered(&format!("a | 1\na | {GAP} x\na | 5\n"), 6);
    assert_eq!(marked.errors.len(), 1, "the end (6) is missing unmarked");
    assert_eq!(marked.missing_under_gaps, 3);
    let silent = check_numbered("a | 1\na | 3\n", 3);
    assert_eq!(silent.errors.len(), 1);
    let repeated = check_numbered("a | 1\na | 1\n", 1);
    assert_eq!(repeated.errors.len(), 1);
    let tail = check_numbered(&format!("a | 1\na | {GAP} x\n"), 4);
    assert!(tail.errors.is_empty() && tail.missing_under_gaps == 3);
}
