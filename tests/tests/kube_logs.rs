//! Pod logs lose nothing (issue 21 part 4), against the real test cluster: a pod
//! prints 2M numbered lines (past containerd's 10 MiB log rotation) and `devenv logs`
//! has every one of them once, in order. The daemon reads the kubelet's stream with
//! timestamps and reopens it from its last line when it breaks.
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::time::Duration;

use devenv_e2e::kube::env_for;
use devenv_e2e::wait_until;

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";
const LINES: u64 = 2_000_000;

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_pod_logs_arrive_once_and_in_order() {
    let (t, env) = env_for("podlogs");
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
      command: "sleep 2; seq 1 {LINES}; echo burst-done; exec sleep 100000"
"#
    ));
    t.devenv_ok(&["up"]);
    // 2M lines through the kubelet: ~140 s on a busy 2-core machine (debug daemon).
    let done = wait_until(Duration::from_secs(600), || {
        t.devenv_ok(&["logs", "burst", "--tail", "1", "--grep", "^burst-done$"])
            .stdout
            .contains("burst-done")
    });
    assert!(done, "the pod's last line never reached devenv logs");
    // Every line after the environment's first position (not just the newest
    // 200,000 a snapshot returns).
    let out = t.devenv_ok(&["logs", "burst", "--after", "1", "--grep", "^[0-9]+$"]);
    let mut next = 1u64;
    let mut errors = Vec::new();
    for line in out.stdout.lines() {
        let text = line.split_once(" | ").map_or(line, |(_, t)| t);
        match text.parse::<u64>() {
            Ok(n) if n == next => next += 1,
            Ok(n) => {
                if errors.len() < 10 {
                    errors.push(format!("got {n}, expected {next}"));
                }
                next = n + 1;
            }
            Err(_) => errors.push(format!("not a number: {line}")),
        }
    }
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(next, LINES + 1, "lines 1..={LINES} once each");
    t.devenv_ok(&["down"]);
}
