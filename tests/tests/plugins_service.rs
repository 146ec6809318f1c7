//! Service-type plugins (`type: <plugin>`): the example plugin
//! (examples/plugins/devenv-service-httpecho) as a node of the graph with readiness,
//! logs and status; plugins that exit mid-protocol, write garbage or crash after
//! ready fail their own service with a clear message and leave the daemon serving.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use devenv_e2e::{free_ports, http_get, wait_until, workspace_root, TestEnv};

fn install(dir: &Path, name: &str, script: &str) {
    std::fs::create_dir_all(dir).expect("mkdir plugins");
    let path = dir.join(name);
    std::fs::write(&path, script).expect("write plugin");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn message_of(env: &TestEnv, service: &str) -> String {
    let status = env.status_json();
    status["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == service))
        .map(|s| s["message"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[test]
fn the_example_plugin_runs_a_service_with_readiness_logs_status_and_dependants() {
    let env = TestEnv::new();
    let example = workspace_root().join("examples/plugins/devenv-service-httpecho");
    let script = std::fs::read_to_string(example).expect("example plugin");
    install(
        &env.project.join(".devenv/plugins"),
        "devenv-service-httpecho",
        &script,
    );
    let port = free_ports(1)[0];
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata: {{ name: plug }}
spec:
  services:
    - name: echo
      type: httpecho
      settings: {{ port: {port}, greeting: bonjour }}
      env: {{ ECHO_SUFFIX: "!" }}
    - name: client
      command: curl -sf http://127.0.0.1:{port}/from-client > got.txt && exec sleep 600
      dependencies: [echo]
"#
    ));
    let up = env.devenv_ok(&["up"]);
    assert!(up.combined().contains("serving on port"), "{up}");
    // `up` returns once client runs (it has no readiness), maybe before curl's answer
    // is in the file its shell already created: wait for it.
    let got = || std::fs::read_to_string(env.project.join("got.txt")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(20), || !got().is_empty()),
        "the client's curl wrote nothing"
    );
    assert_eq!(got().trim(), "bonjour /from-client!");
    let states = env.states();
    assert_eq!(states["echo"], "ready", "{states:?}");
    let status = env.devenv_ok(&["status", "--json"]);
    assert!(
        status.stdout.contains("\"plugin\""),
        "runtime shown\n{status}"
    );
    let resp = http_get(port, "/direct").expect("the plugin's server answers");
    assert!(resp.body.contains("bonjour /direct"), "{}", resp.body);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let logs = env.devenv_ok(&["logs", "echo", "--tail", "100"]);
            logs.stdout.contains("GET /direct") && logs.stdout.contains("listening on")
        }),
        "log messages and stderr reach the service's log"
    );
    env.devenv_ok(&["down"]);
    assert!(
        wait_until(Duration::from_secs(10), || http_get(port, "/").is_none()),
        "down stopped the plugin's server"
    );
}

#[test]
fn broken_plugins_fail_their_service_with_a_clear_message_and_not_the_daemon() {
    let env = TestEnv::new();
    let plugins = env.project.join(".devenv/plugins");
    // Answers hello, then exits in the middle of validate.
    install(
        &plugins,
        "devenv-service-quitter",
        "#!/bin/sh\nread line\necho '{\"type\":\"hello\",\"protocol\":1}'\nread line\nexit 3\n",
    );
    install(
        &plugins,
        "devenv-service-babbler",
        "#!/bin/sh\nread line\necho 'this is not json'\nsleep 600\n",
    );
    install(
        &plugins,
        "devenv-service-oldie",
        "#!/bin/sh\nread line\necho '{\"type\":\"hello\",\"protocol\":99}'\nsleep 600\n",
    );
    // Ready, then crashes: the service fails after the fact.
    install(
        &plugins,
        "devenv-service-crasher",
        "#!/bin/sh\nread l; echo '{\"type\":\"hello\",\"protocol\":1}'\nread l; echo '{\"type\":\"valid\"}'\nread l; echo '{\"type\":\"ready\",\"message\":\"up\"}'\nexit 7\n",
    );
    env.write_config(
        r#"apiVersion: devenv/v1
kind: Environment
metadata: { name: broken }
spec:
  services:
    - { name: quits, type: quitter }
    - { name: babbles, type: babbler }
    - { name: old, type: oldie }
    - { name: missing, type: notinstalled }
    - name: after
      command: exec sleep 600
      dependencies: [quits]
"#,
    );
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    let states = env.states();
    for svc in ["quits", "babbles", "old", "missing"] {
        assert_eq!(states[svc], "failed", "{svc}: {states:?}\n{up}");
    }
    assert_ne!(
        states["after"], "ready",
        "a dependant of a failed plugin started"
    );
    let quits = message_of(&env, "quits");
    assert!(
        quits.contains("plugin `quitter` exited during validate (exit code 3)"),
        "{quits}"
    );
    let babbles = message_of(&env, "babbles");
    assert!(
        babbles.contains("plugin `babbler` broke the protocol during hello")
            && babbles.contains("this is not json"),
        "{babbles}"
    );
    assert!(message_of(&env, "old").contains("speaks protocol 99"));
    assert!(message_of(&env, "missing").contains("devenv-service-notinstalled"));

    // The daemon still serves.
    env.devenv_ok(&["status"]);
    env.devenv_ok(&["down"]);

    // Ready, then gone: the service fails after the fact, saying so.
    env.write_config(
        r#"apiVersion: devenv/v1
kind: Environment
metadata: { name: broken }
spec:
  services:
    - { name: crashes, type: crasher }
"#,
    );
    let _ = env.devenv(&["up", "crashes"]);
    assert!(
        wait_until(Duration::from_secs(20), || {
            env.states().get("crashes").is_some_and(|s| s == "failed")
                && message_of(&env, "crashes")
                    .contains("plugin `crasher` exited during its run (exit code 7)")
        }),
        "{}",
        message_of(&env, "crashes")
    );
    env.devenv_ok(&["status"]);
}

#[test]
fn plugin_service_keys_are_checked() {
    let env = TestEnv::new();
    env.write_config(
        r#"apiVersion: devenv/v1
kind: Environment
metadata: { name: keys }
spec:
  services:
    - { name: a, type: httpecho, command: "true" }
    - { name: b, type: "Not A Plugin" }
    - { name: c, command: "true", settings: { x: 1 } }
"#,
    );
    let out = env.devenv(&["validate"]);
    assert_eq!(out.code, Some(2), "{out}");
    let text = out.combined();
    assert!(
        text.contains("`command` does not apply to service `a`, run by the plugin `httpecho`"),
        "{text}"
    );
    assert!(
        text.contains("`Not A Plugin` is neither a preset"),
        "{text}"
    );
    assert!(
        text.contains("`settings` applies to a service-type plugin"),
        "{text}"
    );
}

#[test]
fn validate_runs_the_plugins_own_check_and_locates_its_errors() {
    let env = TestEnv::new();
    let example = workspace_root().join("examples/plugins/devenv-service-httpecho");
    let script = std::fs::read_to_string(example).expect("example plugin");
    install(
        &env.project.join(".devenv/plugins"),
        "devenv-service-httpecho",
        &script,
    );
    let config = |port: &str, kind: &str| {
        format!(
            r#"apiVersion: devenv/v1
kind: Environment
metadata: {{ name: plugcheck }}
spec:
  services:
    - name: api
      command: exec sleep 600
    - name: echo
      type: {kind}
      settings:
        port: {port}
        greeting: hi
"#
        )
    };
    env.write_config(&config("8080", "httpecho"));
    env.devenv_ok(&["validate"]);

    env.write_config(&config("not-a-port", "httpecho"));
    let out = env.devenv(&["validate"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.combined()
            .contains("settings.port must be a port number (1-65535)"),
        "the plugin's own error\n{out}"
    );
    assert!(
        out.combined().contains("config.yml:11:"),
        "located at the service's settings (its first key, line 11)\n{out}"
    );
    assert!(out.combined().contains("plugin `httpecho`"), "{out}");
    // Nothing started, nothing on the board.
    let states = env.states();
    assert!(
        states.values().all(|s| s == "stopped"),
        "validate started something: {states:?}"
    );

    env.write_config(&config("8080", "nosuch"));
    let out = env.devenv(&["validate"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.combined().contains("devenv-service-nosuch"), "{out}");
    assert!(
        out.combined().contains("config.yml:9:"),
        "located at `type`\n{out}"
    );
}
