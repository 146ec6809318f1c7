//! Terraform services (issue 18 item 2) with the real terraform (v1.11 on PATH) and
//! only what needs no provider download: `terraform_data`, a `local-exec`
//! provisioner, variables, outputs and the local backend.

use std::path::Path;
use std::time::Duration;

use devenv_e2e::{files_containing, wait_until, RunOpts, TestEnv};

const MODULE: &str = r#"
variable "greeting" { type = string }
variable "seed" { type = string }
variable "fail_apply" {
  type    = bool
  default = false
}
resource "terraform_data" "thing" {
  input = var.greeting
}
resource "terraform_data" "boom" {
  count = var.fail_apply ? 1 : 0
  provisioner "local-exec" {
    command = "echo the provisioner broke >&2; exit 3"
  }
}
output "message" { value = "${terraform_data.thing.output}-from-terraform" }
output "token" {
  value     = "tf-secret-${var.seed}"
  sensitive = true
}
"#;

/// The project: the module in ./infra, a terraform service `infra` and a local
/// service `app` whose environment takes its outputs.
fn project(env: &TestEnv, auto_apply: bool, fail_apply: bool, allow_destroy: bool) {
    let infra = env.project.join("infra");
    std::fs::create_dir_all(&infra).expect("mkdir infra");
    std::fs::write(infra.join("main.tf"), MODULE).expect("write main.tf");
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata: {{ name: tfe2e }}
spec:
  services:
    - name: infra
      terraform:
        dir: ./infra
        vars: {{ greeting: hello, seed: s33d, fail_apply: {fail_apply} }}
        autoApply: {auto_apply}
        allowDestroy: {allow_destroy}
    - name: app
      command: printf '%s\n' "$MSG" > msg.out; printf '%s' "$TOKEN" > token.out; echo "app got $MSG"; exec sleep 600
      env: {{ MSG: "${{tf.infra.message}}", TOKEN: "${{tf.infra.token}}" }}
      dependencies: [infra]
"#
    ));
}

fn state_resources(env: &TestEnv) -> usize {
    let path = env.project.join("infra/terraform.tfstate");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return 0;
    };
    let state: serde_json::Value = serde_json::from_str(&text).expect("state is JSON");
    state["resources"].as_array().map_or(0, Vec::len)
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
fn apply_flows_outputs_into_a_local_service_and_keeps_the_sensitive_one_secret() {
    let env = TestEnv::new();
    project(&env, true, false, true);
    let up = env.devenv_ok(&["up"]);
    assert!(
        up.combined()
            .contains("1 to add, 0 to change, 0 to destroy"),
        "the plan summary is in up's progress\n{up}"
    );
    assert_eq!(state_resources(&env), 1, "apply created the resource\n{up}");
    let msg = std::fs::read_to_string(env.project.join("msg.out")).expect("app wrote msg.out");
    assert_eq!(msg.trim(), "hello-from-terraform");
    let token = std::fs::read_to_string(env.project.join("token.out")).expect("token.out");
    assert_eq!(
        token, "tf-secret-s33d",
        "the sensitive output reached the app"
    );

    let status = env.devenv_ok(&["status", "--json"]);
    assert!(status.stdout.contains("\"terraform\""), "{status}");
    assert!(
        message_of(&env, "infra").starts_with("applied: 1 added"),
        "{status}"
    );
    let logs = env.devenv_ok(&["logs", "--tail", "1000"]);
    assert!(logs.stdout.contains("plan: 1 to add"), "{logs}");
    assert!(
        logs.stdout.contains("app got hello-from-terraform"),
        "{logs}"
    );
    for (what, text) in [
        ("status", &status.stdout),
        ("logs", &logs.stdout),
        ("up", &up.combined()),
    ] {
        assert!(
            !text.contains("tf-secret-s33d"),
            "the sensitive output is in {what}"
        );
    }
    let leaked = files_containing(&env.data_dir, b"tf-secret-s33d");
    assert!(
        leaked.is_empty(),
        "the sensitive output is stored in {leaked:?}"
    );

    // A second `up` plans again: no changes, and the app is left alone.
    let again = env.devenv_ok(&["up"]);
    assert!(
        message_of(&env, "infra").starts_with("plan: no changes")
            || again.combined().contains("no changes"),
        "{again}"
    );

    // `down` keeps the resources; `down --volumes` with allowDestroy destroys them.
    let down = env.devenv_ok(&["down"]);
    assert_eq!(state_resources(&env), 1, "plain down destroyed\n{down}");
    let down = env.devenv_ok(&["down", "--volumes"]);
    assert_eq!(
        state_resources(&env),
        0,
        "down --volumes did not destroy\n{down}"
    );
}

#[test]
fn without_auto_apply_up_plans_only_and_down_volumes_needs_allow_destroy() {
    let env = TestEnv::new();
    project(&env, false, false, false);
    let up = env.devenv(&["up", "infra"]);
    assert_eq!(up.code, Some(0), "{up}");
    assert_eq!(state_resources(&env), 0, "applied without autoApply\n{up}");
    let msg = message_of(&env, "infra");
    assert!(
        msg.contains("1 to add") && msg.contains("set `autoApply: true` on infra"),
        "status says what the plan would do and how to apply it: {msg}"
    );
    // The app needs an output that does not exist before an apply: it fails, naming it.
    let app = env.devenv(&["up", "app"]);
    assert_eq!(app.code, Some(1), "{app}");
    assert!(app.combined().contains("has no output `message`"), "{app}");

    // Turn autoApply on: applied; then down --volumes without allowDestroy keeps it.
    project(&env, true, false, false);
    env.devenv_ok(&["up"]);
    assert_eq!(state_resources(&env), 1);
    let down = env.devenv_ok(&["down", "--volumes"]);
    assert_eq!(
        state_resources(&env),
        1,
        "destroyed without allowDestroy\n{down}"
    );
    assert!(down.combined().contains("allowDestroy is off"), "{down}");
}

#[test]
fn a_failing_apply_fails_its_node_with_terraforms_error_and_starts_no_dependant() {
    let env = TestEnv::new();
    project(&env, true, true, false);
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    let msg = message_of(&env, "infra");
    assert!(
        msg.starts_with("terraform apply failed: local-exec provisioner error"),
        "the node's message is terraform's error: {msg}\n{up}"
    );
    let states = env.states();
    assert_eq!(states["infra"], "failed", "{states:?}");
    assert_ne!(states["app"], "ready", "{states:?}");
    assert!(!env.project.join("msg.out").exists(), "the app started");
    let logs = env.devenv_ok(&["logs", "infra", "--tail", "1000"]);
    assert!(logs.stdout.contains("the provisioner broke"), "{logs}");
}

#[test]
fn a_missing_terraform_is_a_one_line_error_saying_how_to_get_it() {
    let env = TestEnv::new();
    project(&env, true, false, false);
    let opts = RunOpts {
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        ..RunOpts::default()
    };
    assert!(
        !Path::new("/usr/bin/terraform").exists() && !Path::new("/bin/terraform").exists(),
        "this test needs terraform outside /usr/bin and /bin"
    );
    let up = env.run(&env.bins.devenv, &["up", "infra"], opts);
    assert_eq!(up.code, Some(1), "{up}");
    let msg = message_of(&env, "infra");
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(
        msg.contains("terraform is not installed") && msg.contains("developer.hashicorp.com"),
        "{msg}"
    );
    assert!(wait_until(Duration::from_secs(5), || env.states()["infra"] == "failed"));
}

#[test]
fn a_reference_to_a_service_it_does_not_depend_on_is_a_located_config_error() {
    let env = TestEnv::new();
    project(&env, true, false, false);
    let path = env.project.join(".devenv/config.yml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(
        &path,
        text.replace("dependencies: [infra]", "dependencies: []"),
    )
    .expect("write");
    let out = env.devenv(&["validate"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.combined()
            .contains("needs `infra` among the dependencies of `app`"),
        "{out}"
    );
    assert!(out.combined().contains("config.yml:"), "located\n{out}");
}

/// A module whose `message` follows `greeting` and whose `fixed` never changes.
const FOLLOWING: &str = r#"
variable "greeting" { type = string }
resource "terraform_data" "thing" {
  input = var.greeting
}
output "message" { value = terraform_data.thing.output }
output "fixed" { value = "constant" }
"#;

/// `infra` and three services that depend on it: `uses_message` and `uses_fixed`
/// reference one output each, `plain` none.
fn following_project(env: &TestEnv, greeting: &str, auto_apply: bool) {
    let infra = env.project.join("infra");
    std::fs::create_dir_all(&infra).expect("mkdir infra");
    std::fs::write(infra.join("main.tf"), FOLLOWING).expect("write main.tf");
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata: {{ name: tffollow }}
spec:
  services:
    - name: infra
      terraform:
        dir: ./infra
        vars: {{ greeting: {greeting} }}
        autoApply: {auto_apply}
    - name: uses-message
      command: echo "uses-message got $MSG"; exec sleep 600
      env: {{ MSG: "${{tf.infra.message}}" }}
      dependencies: [infra]
    - name: uses-fixed
      command: echo "uses-fixed got $FIXED"; exec sleep 600
      env: {{ FIXED: "${{tf.infra.fixed}}" }}
      dependencies: [infra]
    - name: plain
      command: exec sleep 600
      dependencies: [infra]
"#
    ));
}

/// `devenv ARGS` once its output shows `needle` (a process's line reaches the log hub a
/// moment after the process started; no readiness waits for it), within 20 s.
fn logs_showing(env: &TestEnv, args: &[&str], needle: &str) -> devenv_e2e::CmdOutput {
    let mut last = env.devenv_ok(args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !last.stdout.contains(needle) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        last = env.devenv_ok(args);
    }
    assert!(last.stdout.contains(needle), "no `{needle}`:\n{last}");
    last
}

fn pids(env: &TestEnv) -> std::collections::BTreeMap<String, u64> {
    env.status_json()["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["pid"].as_u64()?)))
        .collect()
}

#[test]
fn a_changed_output_restarts_only_the_services_that_use_it() {
    let mut env = TestEnv::new();
    // A CLI config that is not there (as on machines that export one for all
    // shells): terraform would warn about it on every step.
    env.set_var("TF_CLI_CONFIG_FILE", "/nonexistent/.terraformrc");
    following_project(&env, "hello", true);
    let up = env.devenv_ok(&["up"]);
    let before = pids(&env);
    assert_eq!(before.len(), 3, "three processes run: {before:?}\n{up}");

    // The same outputs: nothing restarts.
    env.devenv_ok(&["up"]);
    assert_eq!(
        pids(&env),
        before,
        "an unchanged output restarted a service"
    );

    following_project(&env, "bye", true);
    let again = env.devenv_ok(&["up"]);
    let after = pids(&env);
    assert_ne!(
        after["uses-message"], before["uses-message"],
        "the service using the changed output was not restarted\n{again}"
    );
    assert_eq!(after["uses-fixed"], before["uses-fixed"], "{again}");
    assert_eq!(after["plain"], before["plain"], "{again}");
    // The restarted process's first line reaches the log hub soon after `up` returns.
    let logs = logs_showing(&env, &["logs", "--tail", "1000"], "uses-message got bye");
    assert!(
        logs.stdout
            .contains("a terraform output it uses changed (infra): restarting it"),
        "{logs}"
    );
    assert!(
        !logs
            .stdout
            .contains("Unable to open CLI configuration file"),
        "terraform's warning about the missing CLI config is in the log\n{logs}"
    );
    assert!(
        logs.stdout
            .contains("TF_CLI_CONFIG_FILE=/nonexistent/.terraformrc names no file"),
        "{logs}"
    );
}

#[test]
fn tf_plan_shows_the_plan_and_tf_apply_applies_it_then_starts_the_waiting_services() {
    let env = TestEnv::new();
    following_project(&env, "hello", false);
    // Without autoApply: planned only; the services using outputs cannot start yet.
    let up = env.devenv(&["up", "--keep-going"]);
    assert_eq!(up.code, Some(1), "{up}");
    assert_eq!(state_resources(&env), 0, "{up}");
    let states = env.states();
    assert_eq!(states["uses-message"], "failed", "{states:?}");
    assert_eq!(states["plain"], "ready", "{states:?}");

    let plan = env.devenv_ok(&["tf", "plan", "infra"]);
    assert!(
        plan.stdout.contains("terraform_data.thing will be created"),
        "terraform's plan is shown\n{plan}"
    );
    assert!(
        plan.stdout
            .contains("infra: plan: 1 to add, 0 to change, 0 to destroy"),
        "{plan}"
    );
    assert_eq!(state_resources(&env), 0, "plan applied\n{plan}");

    // No terminal, no --yes: refused before anything runs.
    let refused = env.devenv(&["tf", "apply", "infra"]);
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(
        refused.stderr.contains("stdin is not a terminal") && refused.stderr.contains("--yes"),
        "{refused}"
    );
    assert_eq!(state_resources(&env), 0);

    // Not a terraform service: a usage error.
    let wrong = env.devenv(&["tf", "plan", "plain"]);
    assert_eq!(wrong.code, Some(2), "{wrong}");
    assert!(
        wrong.stderr.contains("`plain` is not a terraform service"),
        "{wrong}"
    );

    let apply = env.devenv_ok(&["tf", "apply", "infra", "--yes"]);
    assert!(
        apply
            .stdout
            .contains("terraform_data.thing will be created")
            && apply.stdout.contains("Apply complete!"),
        "the plan, then terraform's apply\n{apply}"
    );
    assert!(apply.stdout.contains("infra: applied: 1 added"), "{apply}");
    assert_eq!(state_resources(&env), 1, "{apply}");
    let states = env.states();
    for s in ["uses-message", "uses-fixed", "plain", "infra"] {
        assert_eq!(
            states[s], "ready",
            "{s} after the apply: {states:?}\n{apply}"
        );
    }
    logs_showing(
        &env,
        &["logs", "uses-message", "--tail", "100"],
        "uses-message got hello",
    );
    let before = pids(&env);

    // A changed variable, applied with --json: only the service using the changed
    // output restarts.
    following_project(&env, "bye", false);
    let out = env.devenv_ok(&["--json", "tf", "apply", "infra", "--yes"]);
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["line"]
            .as_str()
            .is_some_and(|t| t.contains("terraform_data.thing"))),
        "{out}"
    );
    let plan = lines.iter().find_map(|l| l.get("plan")).expect("a plan");
    assert_eq!(plan["changes"], true, "{out}");
    assert!(
        plan["change"].as_u64().unwrap_or(0) + plan["add"].as_u64().unwrap_or(0) >= 1,
        "{out}"
    );
    let done = lines.iter().find_map(|l| l.get("done")).expect("done");
    assert_eq!(done["ok"], true, "{out}");
    assert_eq!(done["applied"], true, "{out}");
    let after = pids(&env);
    assert_ne!(after["uses-message"], before["uses-message"], "{out}");
    assert_eq!(after["uses-fixed"], before["uses-fixed"], "{out}");
    assert_eq!(after["plain"], before["plain"], "{out}");
    logs_showing(
        &env,
        &["logs", "uses-message", "--tail", "100"],
        "uses-message got bye",
    );
}
