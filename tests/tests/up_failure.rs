//! `up` that cannot succeed: exit 1, naming the service and why, and nothing left running.

use std::time::Duration;

use devenv_e2e::{free_ports, wait_until, TestEnv};

const HEAD: &str = "\
apiVersion: devenv/v1
kind: Environment
metadata:
  name: failing
spec:
  services:
";

fn assert_rolled_back(env: &TestEnv) {
    let gone = wait_until(Duration::from_secs(10), || env.service_pids().is_empty());
    assert!(
        gone,
        "services still running after a failed up: {:?}",
        env.service_pids()
    );
}

#[test]
fn readiness_that_never_passes_fails_up_after_its_timeout() {
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    env.write_config(&format!(
        "{HEAD}{}",
        format_args!(
            "    - name: stuck
      command: echo stuck is up but never listens; exec sleep 300
      readiness:
        tcp:
          port: {port}
        periodSeconds: 1
        timeoutSeconds: 2
"
        )
    ));
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "up should fail\n{up}");
    let text = up.combined();
    assert!(
        text.contains("stuck"),
        "up does not name the failed service\n{up}"
    );
    let lower = text.to_lowercase();
    assert!(
        [
            "timed out",
            "timeout",
            "within 2s",
            "within 2 s",
            "did not become ready"
        ]
        .iter()
        .any(|w| lower.contains(w)),
        "up does not say the readiness timed out\n{up}"
    );
    // Gave up at the configured 2 s, not at some default.
    assert!(
        up.elapsed < Duration::from_secs(20),
        "up took {:?}",
        up.elapsed
    );

    let states = env.states();
    assert!(
        matches!(
            states.get("stuck").map(String::as_str),
            Some("failed" | "stopped")
        ),
        "stuck after a failed up: {states:?}"
    );
    assert_rolled_back(&env);
}

#[test]
fn service_exiting_before_ready_reports_exit_code_and_last_lines() {
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    env.write_config(&format!(
        "{HEAD}{}",
        format_args!(
            "    - name: crashy
      command: \"echo crashy booting; echo 'crashy: cannot open database' >&2; exit 3\"
      readiness:
        tcp:
          port: {port}
        periodSeconds: 1
        timeoutSeconds: 60
    - name: after
      command: touch started-after && exec sleep 300
      dependencies: [crashy]
"
        )
    ));
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "up should fail\n{up}");
    let text = up.combined();
    assert!(
        text.contains("crashy"),
        "up does not name the failed service\n{up}"
    );
    assert!(
        mentions_exit_code(&text, 3),
        "up does not give the exit code 3\n{up}"
    );
    assert!(
        text.contains("cannot open database"),
        "up does not show the last log lines\n{up}"
    );
    // Noticed the exit rather than waiting out the 60 s readiness timeout.
    assert!(
        up.elapsed < Duration::from_secs(20),
        "up took {:?}",
        up.elapsed
    );
    assert!(
        !env.project.join("started-after").exists(),
        "a dependent of the failed service was started"
    );

    let status = env.status_json();
    let crashy = status["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "crashy"))
        .unwrap_or_else(|| panic!("crashy not in status\n{status:#}"));
    assert_eq!(crashy["state"], "failed", "{status:#}");
    assert_rolled_back(&env);
}

/// Whether `text` says "exit..." followed closely by `code` as a whole number, as in
/// "exit code 3", "exited with status 3", "exit status: 3".
fn mentions_exit_code(text: &str, code: u32) -> bool {
    let lower = text.to_lowercase();
    lower.match_indices("exit").any(|(i, _)| {
        let window: String = lower[i..].chars().take(30).collect();
        window
            .split(|c: char| !c.is_ascii_digit())
            .any(|tok| tok.parse::<u32>().is_ok_and(|n| n == code))
    })
}

#[test]
fn exit_code_mention_is_recognised() {
    assert!(mentions_exit_code(
        "crashy: exited with code 3 before ready",
        3
    ));
    assert!(mentions_exit_code("Exit status: 3", 3));
    assert!(!mentions_exit_code("crashy exited with code 13", 3));
    assert!(!mentions_exit_code("port 31337 exit", 3));
}
