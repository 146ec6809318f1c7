//! Loss-free follow (issue 21), end to end: bursts followed by `devenv logs -f` at
//! full speed and by a client that stops reading mid-stream; every line arrives
//! exactly once and in order, the producer does not wait for the slow client, lines
//! deleted by retention give one accurate marker, and a client resuming from its
//! last position misses and repeats nothing.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devenv_e2e::{wait_until, TestEnv};

/// Services that wait at a fifo gate, then print `seq 1 LINES`, then write their
/// wall time to `wall-NAME` (read by [`wait_wall`]).
fn config(env: &TestEnv, services: &[(&str, u64)]) -> (String, Vec<PathBuf>) {
    config_padded(env, services, "")
}

/// [`config`], each number followed by ` PAD`.
fn config_padded(env: &TestEnv, services: &[(&str, u64)], pad: &str) -> (String, Vec<PathBuf>) {
    let format = if pad.is_empty() {
        String::new()
    } else {
        format!("-f '%.0f {pad}' ")
    };
    let mut yaml = String::from(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: follow\nspec:\n  services:\n",
    );
    let mut gates = Vec::new();
    for (name, lines) in services {
        let gate = env.root().join(format!("gate-{name}"));
        nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let wall = env.root().join(format!("wall-{name}"));
        let command = format!(
            "cat {} >/dev/null; s=$(date +%s%N); seq {format}1 {lines}; e=$(date +%s%N); \
             echo $(( (e - s) / 1000000 )) > {}.tmp; mv {}.tmp {}; exec sleep 100000",
            gate.display(),
            wall.display(),
            wall.display(),
            wall.display()
        );
        yaml.push_str(&format!(
            "    - name: {name}\n      command: {}\n",
            serde_json::to_string(&command).expect("quote")
        ));
        gates.push(gate);
    }
    (yaml, gates)
}

/// Releases a gated service (the open waits until it is at its gate).
fn open_gate(gate: &PathBuf) {
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(gate)
            .expect("open gate"),
    );
}

/// What a client printed, checked as it arrives: per service, numbers must come
/// 1, 2, 3, ... (a marker may skip ahead by exactly its count).
#[derive(Debug, Default)]
struct Tally {
    /// Per service: the next number expected.
    next: HashMap<String, u64>,
    lines: u64,
    missed: u64,
    markers: Vec<String>,
    /// Sum of every number received (checksum against the sum printed).
    sum: u64,
    /// Positions, when reading `--json`: must increase.
    last_position: u64,
    /// Time of the last line, when reading `--json`: must not decrease.
    last_time: String,
    errors: Vec<String>,
    /// Lines of the snapshot and devenv's own (`started ...`).
    other: u64,
    /// Set while the reader is told to stop reading.
    paused_at: Option<u64>,
    /// A resumed client: a service's first number may be any.
    resumed: bool,
}

impl Tally {
    fn number(&mut self, service: &str, text: &str) {
        let word = text.split(' ').next().unwrap_or_default();
        match word.parse::<u64>() {
            Ok(n) => {
                let first = if self.resumed { n } else { 1 };
                let next = self.next.entry(service.to_string()).or_insert(first);
                if n != *next && self.errors.len() < 10 {
                    self.errors
                        .push(format!("{service}: got {n}, expected {}", *next));
                }
                *next = n + 1;
                self.lines += 1;
                self.sum += n;
            }
            Err(_) => self.other += 1,
        }
    }

    fn marker(&mut self, service: &str, count: u64, line: &str) {
        self.missed += count;
        self.markers.push(line.to_string());
        *self.next.entry(service.to_string()).or_insert(1) += count;
    }

    fn plain(&mut self, line: &str) {
        let Some((service, text)) = line.split_once(" | ") else {
            self.other += 1;
            return;
        };
        let service = service.trim();
        if let Some(rest) = text.strip_prefix("... ") {
            if let Some((n, _)) = rest.split_once(" lines skipped") {
                if let Ok(n) = n.parse() {
                    self.marker(service, n, line);
                    return;
                }
            }
        }
        self.number(service, text);
    }

    fn json(&mut self, line: &str) {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(format!("not JSON ({e}): {line}"));
                return;
            }
        };
        let service = v["service"].as_str().unwrap_or_default().to_string();
        if let Some(n) = v["missed"].as_u64() {
            self.marker(&service, n, line);
            return;
        }
        let position = v["position"].as_u64().unwrap_or(0);
        if position <= self.last_position && self.errors.len() < 10 {
            self.errors.push(format!(
                "position {position} after {}: {line}",
                self.last_position
            ));
        }
        self.last_position = position;
        let time = v["time"].as_str().unwrap_or_default().to_string();
        if time < self.last_time && self.errors.len() < 10 {
            self.errors
                .push(format!("time {time} after {}: {line}", self.last_time));
        }
        self.last_time = time;
        self.number(&service, v["line"].as_str().unwrap_or_default());
    }
}

/// A `devenv logs` client whose output a thread reads and checks; it can be told
/// to stop reading (its pipe fills, the client stalls) and to go on.
struct Client {
    child: Child,
    tally: Arc<Mutex<Tally>>,
    pause: Arc<Mutex<Option<u64>>>,
}

impl Client {
    fn spawn(env: &TestEnv, args: &[&str], pause_after: Option<u64>) -> Self {
        let mut child = env.spawn_devenv(args);
        let mut out = child.stdout.take().expect("piped stdout");
        let json = args.contains(&"--json");
        let tally = Arc::new(Mutex::new(Tally {
            resumed: args.contains(&"--after"),
            ..Tally::default()
        }));
        let pause = Arc::new(Mutex::new(pause_after));
        let (t, p) = (tally.clone(), pause.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut carry: Vec<u8> = Vec::new();
            loop {
                let pause_at = *p.lock().unwrap();
                if let Some(at) = pause_at {
                    let lines = t.lock().unwrap().lines;
                    if lines >= at {
                        t.lock().unwrap().paused_at.get_or_insert(lines);
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
                let n = match out.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                carry.extend_from_slice(&buf[..n]);
                let end = carry.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                let mut tally = t.lock().unwrap();
                for line in carry[..end]
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                {
                    let line = String::from_utf8_lossy(line);
                    if json {
                        tally.json(&line);
                    } else {
                        tally.plain(&line);
                    }
                }
                drop(tally);
                carry.drain(..end);
            }
        });
        Self {
            child,
            tally,
            pause,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Tally) -> T) -> T {
        f(&self.tally.lock().unwrap())
    }

    fn go_on(&self) {
        *self.pause.lock().unwrap() = None;
    }

    /// Waits until lines + missed reach `total`; panics with the tally otherwise.
    fn wait_for(&self, total: u64, limit: Duration, what: &str) {
        let done = wait_until(limit, || self.with(|t| t.lines + t.missed >= total));
        assert!(done, "{what}: {:#?}", self.with(|t| format!("{t:?}")));
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The producer's own wall time in ms, once it is done.
fn wait_wall(env: &TestEnv, service: &str) -> u64 {
    let path = env.root().join(format!("wall-{service}"));
    let mut wall = None;
    let done = wait_until(Duration::from_secs(240), || {
        wall = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        wall.is_some()
    });
    assert!(done, "{service} never finished");
    wall.unwrap_or(0)
}

/// One burst followed by a full-speed client and by one that stops reading
/// mid-stream until the producer is done (and at least 5 s); both get every line
/// once, in order. `services` x `lines` each; `json` reads positions and times.
fn burst(services: usize, lines: u64, json: bool) {
    let env = TestEnv::new();
    let names: Vec<String> = (0..services).map(|i| format!("gen{i:02}")).collect();
    let mut specs: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), lines)).collect();
    // The same burst with nobody following: the producer's wall time alone.
    specs.push(("alone", lines * services as u64));
    let (yaml, gates) = config(&env, &specs);
    env.write_config(&yaml);
    env.devenv_ok(&["up"]);

    open_gate(&gates[services]);
    let alone = wait_wall(&env, "alone");

    let mut args = vec!["logs", "-f"];
    if json {
        args.push("--json");
    }
    args.extend(names.iter().map(String::as_str));
    let total = lines * services as u64;
    let fast = Client::spawn(&env, &args, None);
    let slow = Client::spawn(&env, &args, Some(total / 10));
    // Subscribed once their snapshot (`started ...`) arrived.
    let subscribed = wait_until(Duration::from_secs(30), || {
        fast.with(|t| t.other >= services as u64) && slow.with(|t| t.other >= services as u64)
    });
    assert!(subscribed, "the clients printed no snapshot");

    let start = Instant::now();
    for g in &gates[..services] {
        open_gate(g);
    }
    let paused = wait_until(Duration::from_secs(120), || {
        slow.with(|t| t.paused_at.is_some())
    });
    assert!(paused, "the slow client never got to its pause");
    let paused_since = Instant::now();
    // The producers finish while the slow client reads nothing.
    let mut walls = Vec::new();
    for n in &names {
        walls.push(wait_wall(&env, n));
    }
    let produced = start.elapsed();
    let stalled_at = slow.with(|t| t.lines);
    assert!(
        stalled_at < total,
        "the slow client read everything before the producers finished"
    );
    let rest = Duration::from_secs(5).saturating_sub(paused_since.elapsed());
    std::thread::sleep(rest); // the pause itself, not a synchronisation
    assert_eq!(
        slow.with(|t| t.lines),
        stalled_at,
        "the slow client read while paused"
    );
    slow.go_on();

    fast.wait_for(total, Duration::from_secs(300), "the full-speed client");
    slow.wait_for(total, Duration::from_secs(300), "the slow client");
    let sum = lines * (lines + 1) / 2 * services as u64;
    for (what, c) in [("full-speed", &fast), ("slow", &slow)] {
        c.with(|t| {
            assert!(t.errors.is_empty(), "{what} client: {:#?}", t.errors);
            assert!(t.markers.is_empty(), "{what} client: {:#?}", t.markers);
            assert_eq!(t.lines, total, "{what} client");
            assert_eq!(t.sum, sum, "{what} client: checksum");
            for n in &names {
                assert_eq!(t.next.get(n), Some(&(lines + 1)), "{what} client: {n}");
            }
        });
    }
    eprintln!(
        "{services} x {lines} lines: producer wall time alone {alone} ms; with a full-speed \
         and a paused client: max {} ms (all done {} ms after release); the slow client \
         stopped at {stalled_at} lines",
        walls.iter().max().unwrap_or(&0),
        produced.as_millis()
    );
}

#[test]
#[ignore = "heavy: run by CI's ignored set (2M lines through a debug build)"]
fn two_million_lines_reach_a_fast_and_a_paused_follower_exactly_once() {
    burst(1, 2_000_000, false);
}

#[test]
#[ignore = "heavy: run by CI's ignored set (50 x 40k lines through a debug build)"]
fn fifty_merged_services_reach_both_followers_exactly_once_in_order() {
    burst(50, 40_000, true);
}

/// The small version of the same, in the default set.
#[test]
fn a_burst_reaches_a_fast_and_a_paused_follower_exactly_once() {
    burst(3, 100_000, true);
}

#[test]
#[ignore = "heavy: run by CI's ignored set (95 MB through a debug build, ~50 s); the same with small caps: core's logs::follow_tests"]
fn lines_deleted_by_retention_give_one_accurate_marker() {
    let env = TestEnv::new();
    // ~140 bytes a line on disk: 700k lines are ~95 MB, past the 64 MiB per service.
    let lines = 700_000;
    let (yaml, gates) = config_padded(&env, &[("counter", lines)], &"x".repeat(110));
    env.write_config(&yaml);
    env.devenv_ok(&["up"]);
    let client = Client::spawn(&env, &["logs", "-f", "counter"], Some(1000));
    let subscribed = wait_until(Duration::from_secs(30), || client.with(|t| t.other >= 1));
    assert!(subscribed, "no snapshot");
    open_gate(&gates[0]);
    wait_wall(&env, "counter");
    client.go_on();
    client.wait_for(lines, Duration::from_secs(300), "the stalled client");
    client.with(|t| {
        assert!(t.errors.is_empty(), "{:#?}", t.errors);
        assert_eq!(t.markers.len(), 1, "{:#?}", t.markers);
        assert!(
            t.markers[0].contains("removed by disk retention"),
            "{}",
            t.markers[0]
        );
        assert!(t.missed > 0);
        assert_eq!(t.lines + t.missed, lines);
        assert_eq!(t.next.get("counter"), Some(&(lines + 1)));
    });
    // What is left is what `--stats` says.
    let stats = env.devenv_ok(&["logs", "--stats", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).expect("stats JSON");
    let svc = &v["services"][0];
    assert_eq!(svc["service"], "counter", "{v}");
    let on_disk = svc["disk_bytes"].as_u64().unwrap_or(0);
    let cap = v["limits"]["service_bytes"].as_u64().unwrap_or(0);
    assert!(
        on_disk <= cap + v["limits"]["segment_bytes"].as_u64().unwrap_or(0),
        "{v}"
    );
    let disk_lines = svc["disk_lines"].as_u64().unwrap_or(0);
    let missed = client.with(|t| t.missed);
    // Lines on disk now, plus what retention deleted (of which the client missed
    // the part it had not read before), is every line the service printed.
    assert!(disk_lines > 0 && disk_lines + missed <= lines + 10, "{v}");
    assert!(svc["oldest"].is_string(), "{v}");
}

#[test]
fn a_client_resuming_from_its_position_misses_and_repeats_nothing() {
    let env = TestEnv::new();
    let lines = 300_000;
    let (yaml, gates) = config(&env, &[("s", lines)]);
    env.write_config(&yaml);
    env.devenv_ok(&["up"]);
    let first = Client::spawn(&env, &["logs", "-f", "--json", "s"], Some(100_000));
    assert!(
        wait_until(Duration::from_secs(30), || first.with(|t| t.other >= 1)),
        "no snapshot"
    );
    open_gate(&gates[0]);
    first.wait_for(100_000, Duration::from_secs(120), "the first client");
    // The connection drops mid-stream (the client goes away).
    let (position, had, next) = first.with(|t| (t.last_position, t.lines, t.next["s"]));
    drop(first);
    let after = position.to_string();
    let second = Client::spawn(
        &env,
        &["logs", "-f", "--json", "--after", &after, "s"],
        None,
    );
    second.wait_for(lines - had, Duration::from_secs(120), "the resumed client");
    second.with(|t| {
        assert!(t.errors.is_empty(), "{:#?}", t.errors);
        assert!(t.markers.is_empty(), "{:#?}", t.markers);
        assert_eq!(t.lines, lines - had);
        assert!(t.last_position > position);
        // It started exactly after the first client's last line.
        assert_eq!(t.sum, (next..=lines).sum::<u64>());
    });
    // Without -f: the retained lines after the position, then the command ends.
    let out = env.devenv_ok(&[
        "logs", "--json", "--after", &after, "s", "--grep", "^[0-9]+$",
    ]);
    let n = out.stdout.lines().count() as u64;
    assert_eq!(n, lines - had, "lines after {position}");
}
