//! Log levels end to end: read from the lines a real service prints (a prefix, logfmt,
//! JSON, Python's format; stdout and stderr), filtered by the daemon for `devenv logs
//! --level`, in a snapshot, from disk after a daemon restart, and while following;
//! shown in `--json`.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use devenv_e2e::{wait_until, TestEnv};

/// Prints its lines once `go` exists (so a follower can subscribe first), then stays.
const SCRIPT: &str = r#"
while [ ! -e go ]; do sleep 0.05; done
echo 'INFO starting'
echo 'time=2024-05-01T12:00:00Z level=warn msg="slow query"'
echo '{"level":50,"msg":"pino error"}'
echo 'WARNING:root:python warning' >&2
echo 'plain stderr line' >&2
echo 'INFORMATION is not a level'
echo 'errors=0 neither'
echo '2024-05-01 12:00:00,123 [main] ERROR last'
exec sleep 100000
"#;

/// Sorted.
const WARN_AND_UP: [&str; 4] = [
    "2024-05-01 12:00:00,123 [main] ERROR last",
    "WARNING:root:python warning",
    "time=2024-05-01T12:00:00Z level=warn msg=\"slow query\"",
    "{\"level\":50,\"msg\":\"pino error\"}",
];

fn write_project(env: &TestEnv) {
    std::fs::write(env.project.join("app.sh"), SCRIPT).unwrap();
    env.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: levels\nspec:\n  services:\n    - name: app\n      command: sh app.sh\n",
    );
}

/// The service's own lines (not devenv's `started`...) of `devenv logs app ARGS`,
/// sorted: stdout and stderr are two pipes, read in no fixed order.
fn app_lines(env: &TestEnv, args: &[&str]) -> Vec<String> {
    let mut all = vec!["logs", "app", "--json"];
    all.extend_from_slice(args);
    let out = env.devenv_ok(&all);
    let mut lines: Vec<String> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v["stream"] != "system")
        .map(|v| v["line"].as_str().unwrap_or_default().to_owned())
        .collect();
    lines.sort();
    lines
}

#[test]
fn levels_are_read_filtered_and_shown() {
    let env = TestEnv::new();
    write_project(&env);
    env.devenv_ok(&["up"]);

    // A follower of errors only, subscribed before the lines are printed.
    let mut follower = env.spawn_devenv(&["logs", "-f", "app", "--level", "error", "--json"]);
    let out = follower.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // devenv's own `started` line passes every level filter: the follower is on.
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the follower printed nothing");
    assert!(first.contains("started"), "{first}");
    std::fs::write(env.project.join("go"), "").unwrap();
    let mut followed = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let last = line.ends_with("ERROR last");
        followed.push(line);
        if last {
            break;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let texts: Vec<String> = followed
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v["stream"] != "system")
        .map(|v| v["line"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        texts,
        [
            "{\"level\":50,\"msg\":\"pino error\"}",
            "2024-05-01 12:00:00,123 [main] ERROR last"
        ],
        "followed with --level error"
    );

    let all = |env: &TestEnv| app_lines(env, &[]);
    assert!(
        wait_until(Duration::from_secs(20), || all(&env).len() == 8),
        "the service's 8 lines never all arrived: {:?}",
        all(&env)
    );
    assert_eq!(app_lines(&env, &["--level", "warn"]), WARN_AND_UP);
    assert_eq!(app_lines(&env, &["--level", "WARNING"]), WARN_AND_UP);
    assert_eq!(
        app_lines(&env, &["--level", "error", "--grep", "pino"]),
        ["{\"level\":50,\"msg\":\"pino error\"}"]
    );
    assert_eq!(app_lines(&env, &["--level", "info"]).len(), 5);

    // --json carries the level, and none where the line states none.
    let json = env.devenv_ok(&["logs", "app", "--json"]);
    let levels: Vec<(String, Option<String>)> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v["stream"] != "system")
        .map(|v| {
            (
                v["line"].as_str().unwrap_or_default().to_owned(),
                v["level"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let level_of = |needle: &str| {
        levels
            .iter()
            .find(|(l, _)| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}: {levels:?}"))
            .1
            .clone()
    };
    assert_eq!(level_of("INFO starting").as_deref(), Some("info"));
    assert_eq!(level_of("slow query").as_deref(), Some("warn"));
    assert_eq!(level_of("pino error").as_deref(), Some("error"));
    assert_eq!(level_of("python warning").as_deref(), Some("warn"));
    assert_eq!(level_of("plain stderr line"), None);
    assert_eq!(level_of("INFORMATION"), None);
    assert_eq!(level_of("errors=0"), None);

    // Read back from the segments by a new daemon: the same levels.
    env.devenv_ok(&["daemon", "stop"]);
    assert!(
        wait_until(Duration::from_secs(15), || !env.socket.exists()),
        "the daemon did not stop"
    );
    assert_eq!(app_lines(&env, &["--level", "warn"]), WARN_AND_UP);

    // A level that is none: a usage error naming the choices.
    let bad = env.devenv(&["logs", "--level", "loud"]);
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("warn"), "{bad}");
}
