//! External secrets (`type: external-secret`): values from the client's environment, a
//! dotenv or JSON file and a command reach a local process; none of them is in status,
//! logs or anywhere under the data dir; `up` after a rotation restarts the service with
//! the new value (and only then); a provider that fails starts nothing and says why.

use std::time::Duration;

use devenv_e2e::{files_containing, wait_until, TestEnv};

const CONFIG: &str = r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: providers
spec:
  secrets:
    - name: from-env
      type: external-secret
      provider: env
      keys: { ENV_TOKEN: MY_SHELL_TOKEN }
    - name: inline
      data: { INLINE_TOKEN: "${MY_INLINE_TOKEN}" }
    - name: from-dotenv
      provider: file
      path: ./secrets/dev.env
    - name: from-json
      provider: file
      path: ./secrets/db.json
      keys: { DB_PASSWORD: password }
    - name: from-command
      provider: command
      command: [sh, ./get-token.sh]
      key: CMD_TOKEN
      timeoutSeconds: 10
  services:
    - name: app
      command: [sh, -c, 'for v in ENV_TOKEN INLINE_TOKEN FILE_TOKEN DB_PASSWORD CMD_TOKEN; do printenv $v | tr -d "\n" > out-$v.txt; done; echo started; exec sleep 300']
      secrets: [from-env, inline, from-dotenv, from-json, from-command]
      readiness: { exec: { command: [test, -f, out-CMD_TOKEN.txt] } }
"#;

fn pid_of(env: &TestEnv, name: &str) -> Option<u64> {
    let status = env.status_json();
    status["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)?
        .get("pid")?
        .as_u64()
}

#[test]
fn every_provider_reaches_the_process_and_no_value_is_kept_or_shown() {
    let mut env = TestEnv::new();
    let id = env.id.clone();
    let sentinels = [
        ("ENV_TOKEN", format!("env-sentinel-{id}")),
        ("INLINE_TOKEN", format!("inline-sentinel-{id}")),
        ("FILE_TOKEN", format!("dotenv-sentinel-{id}")),
        ("DB_PASSWORD", format!("json-sentinel-{id}")),
        ("CMD_TOKEN", format!("command-sentinel-{id}")),
    ];
    env.set_var("MY_SHELL_TOKEN", &sentinels[0].1);
    env.set_var("MY_INLINE_TOKEN", &sentinels[1].1);
    std::fs::create_dir_all(env.project.join("secrets")).unwrap();
    std::fs::write(
        env.project.join("secrets/dev.env"),
        format!("# dev only\nFILE_TOKEN={}\n", sentinels[2].1),
    )
    .unwrap();
    std::fs::write(
        env.project.join("secrets/db.json"),
        format!(r#"{{"password": "{}", "user": "app"}}"#, sentinels[3].1),
    )
    .unwrap();
    std::fs::write(env.project.join("token-store"), &sentinels[4].1).unwrap();
    std::fs::write(env.project.join("get-token.sh"), "cat token-store\n").unwrap();
    env.write_config(CONFIG);

    let up = env.devenv_ok(&["up"]);
    let read = |var: &str| {
        std::fs::read_to_string(env.project.join(format!("out-{var}.txt"))).unwrap_or_default()
    };
    for (var, value) in &sentinels {
        assert_eq!(&read(var), value, "{var} in the process");
    }

    // Nowhere a user or another program looks: up's output, status, logs, config
    // show, the data dir (sled, logs on disk, the daemon's log).
    let mut shown = vec![up];
    shown.push(env.devenv_ok(&["status", "--json"]));
    shown.push(env.devenv_ok(&["status"]));
    shown.push(env.devenv_ok(&["logs", "app"]));
    shown.push(env.devenv_ok(&["config", "show"]));
    for out in &shown {
        for (_, value) in &sentinels {
            assert!(!out.combined().contains(value.as_str()), "{out}");
        }
    }
    for (var, value) in &sentinels {
        let leaked = files_containing(&env.data_dir, value.as_bytes());
        assert!(leaked.is_empty(), "{var}'s value is stored in {leaked:?}");
    }

    // An `up` with nothing changed leaves the process alone...
    let pid = pid_of(&env, "app").expect("app has a pid");
    env.devenv_ok(&["up"]);
    assert_eq!(pid_of(&env, "app"), Some(pid), "restarted without a change");

    // ...a rotated value (the file and the command's store) restarts it with the new ones.
    let rotated_file = format!("dotenv-rotated-{id}");
    let rotated_cmd = format!("command-rotated-{id}");
    std::fs::write(
        env.project.join("secrets/dev.env"),
        format!("FILE_TOKEN={rotated_file}\n"),
    )
    .unwrap();
    std::fs::write(env.project.join("token-store"), &rotated_cmd).unwrap();
    env.devenv_ok(&["up"]);
    assert!(
        wait_until(Duration::from_secs(20), || read("FILE_TOKEN")
            == rotated_file
            && read("CMD_TOKEN") == rotated_cmd),
        "the rotated values did not reach the process: {:?} {:?}",
        read("FILE_TOKEN"),
        read("CMD_TOKEN")
    );
    assert_ne!(
        pid_of(&env, "app"),
        Some(pid),
        "not restarted after the rotation"
    );
    for value in [&rotated_file, &rotated_cmd] {
        let leaked = files_containing(&env.data_dir, value.as_bytes());
        assert!(leaked.is_empty(), "a rotated value is stored in {leaked:?}");
    }
    env.devenv_ok(&["down"]);
}

#[test]
fn a_failing_provider_starts_nothing_and_says_which_secret_and_why() {
    let env = TestEnv::new();
    let leaked = format!("printed-before-failing-{}", env.id);
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: providers
spec:
  secrets:
    - name: db
      provider: command
      command: 'echo {leaked}; echo "Error: shop/db is not in the password store." >&2; exit 1'
      key: DB_PASSWORD
  services:
    - name: app
      command: [sh, -c, 'touch started; exec sleep 300']
      secrets: [db]
"#
    ));
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    let text = up.combined();
    assert!(
        text.contains("secret `db` (command)")
            && text.contains("exited with 1")
            && text.contains("not in the password store"),
        "{up}"
    );
    assert!(
        !text.contains(&leaked),
        "the output reached the error: {up}"
    );
    assert!(!env.project.join("started").exists(), "the service started");
    let missing = TestEnv::new();
    missing.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: providers\nspec:\n  secrets:\n    - name: token\n      provider: env\n      keys: { TOKEN: DEVENV_E2E_SURELY_UNSET_TOKEN }\n  services:\n    - name: app\n      command: sleep 300\n      secrets: [token]\n",
    );
    let up = missing.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.combined().contains("DEVENV_E2E_SURELY_UNSET_TOKEN"),
        "{up}"
    );
}
