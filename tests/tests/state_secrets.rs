//! What `up` records so a crash does not change what the user asked for holds only
//! what the environment needs: an unrelated secret in the client's environment never
//! reaches the state dir.

use std::time::Duration;

use devenv_e2e::{files_containing, wait_until, TestEnv};

#[test]
fn an_unrelated_client_secret_never_reaches_the_state_dir() {
    let mut env = TestEnv::new();
    let secret = format!("never-stored-{}", env.id);
    let greeting = format!("kept-for-recovery-{}", env.id);
    env.set_var("AWS_SECRET_ACCESS_KEY", &secret);
    env.set_var("MY_GREETING", &greeting);
    env.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: secrets\nspec:\n  services:\n    - name: app\n      command: sleep 300\n      env: { GREETING: \"${MY_GREETING}\" }\n",
    );
    env.devenv_ok(&["up"]);
    let state = env.data_dir.join("state");
    // The wanted record is flushed before `up` answers; the variable the config
    // references is in it (so the search below does see sled's bytes)...
    assert!(
        wait_until(Duration::from_secs(10), || !files_containing(
            &state,
            greeting.as_bytes()
        )
        .is_empty()),
        "the referenced variable's value is not in {}",
        state.display()
    );
    // ...the unrelated secret is nowhere under the data dir, also after `down`.
    let leaked = files_containing(&env.data_dir, secret.as_bytes());
    assert!(
        leaked.is_empty(),
        "the client's secret was stored in {leaked:?}"
    );
    env.devenv_ok(&["down"]);
    env.devenv_ok(&["daemon", "stop"]);
    let leaked = files_containing(&env.data_dir, secret.as_bytes());
    assert!(
        leaked.is_empty(),
        "the client's secret was stored in {leaked:?}"
    );
}

/// `secrets:` on a local service reaches its process (and its hooks, `devenv exec` in it) as
/// environment variables, under its own `env`; the value is in no status.
#[test]
fn a_local_service_gets_its_secrets_as_environment_variables() {
    let mut env = TestEnv::new();
    let token = format!("tok-{}-s3cret", env.id);
    env.set_var("API_TOKEN_VALUE", &token);
    env.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: secrets\nspec:\n  secrets:\n    - name: creds\n      data: { API_TOKEN: \"${API_TOKEN_VALUE}\", MODE: from-secret }\n  services:\n    - name: app\n      command: [sh, -c, 'printf %s \"$API_TOKEN\" > token.txt; printf %s \"$MODE\" > mode.txt; exec sleep 300']\n      env: { MODE: from-env }\n      secrets: [creds]\n      readiness: { exec: { command: [test, -s, mode.txt] } }\n      hooks: { postReady: 'printf %s \"$API_TOKEN\" > hook-token.txt' }\n",
    );
    env.devenv_ok(&["up"]);
    let read = |f: &str| std::fs::read_to_string(env.project.join(f)).unwrap_or_default();
    assert_eq!(
        read("token.txt"),
        token,
        "the secret's value in the process"
    );
    assert_eq!(read("mode.txt"), "from-env", "the service's own env wins");
    assert_eq!(read("hook-token.txt"), token, "its hooks have it too");
    let exec = env.devenv_ok(&["exec", "app", "--", "sh", "-c", "printf %s \"$API_TOKEN\""]);
    assert_eq!(exec.stdout, token, "exec sees the service's environment");
    let status = env.devenv_ok(&["status", "--json"]);
    assert!(!status.stdout.contains(&token), "{status}");
    env.devenv_ok(&["down"]);
}
