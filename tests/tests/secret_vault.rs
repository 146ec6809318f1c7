//! `provider: vault` against a real Vault: HashiCorp Vault v1.21.0 built from its Go
//! module by `scripts/build-vault.sh` (the test command's install step builds it once and
//! caches it), run as `vault server -dev` on 127.0.0.1. A KV v2 value written with the
//! vault CLI reaches a local process and is nowhere devenv shows or keeps things; a
//! rotated value restarts the service; a wrong token, a missing path and a KV v1 mount
//! each fail `up` with their own message and start nothing.

use std::time::Duration;

use devenv_e2e::vault::Vault;
use devenv_e2e::{files_containing, wait_until, TestEnv};

fn config(mount: &str, path: &str) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: vaulted
spec:
  secrets:
    - name: db
      type: external-secret
      provider: vault
      mount: {mount}
      path: {path}
      keys: {{ DB_PASSWORD: password }}
  services:
    - name: app
      command: [sh, -c, 'printenv DB_PASSWORD | tr -d "\n" > out.txt; echo started; exec sleep 300']
      secrets: [db]
      readiness: {{ exec: {{ command: [test, -f, out.txt] }} }}
"#
    )
}

fn pid_of(env: &TestEnv) -> Option<u64> {
    env.status_json()["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == "app")?
        .get("pid")?
        .as_u64()
}

#[test]
fn a_kv2_value_from_a_real_vault_reaches_the_process_and_rotates() {
    let mut env = TestEnv::new();
    let vault = Vault::start(&env.id);
    let value = format!("vault-sentinel-{}", env.id);
    vault.ok(&[
        "kv",
        "put",
        "secret/shop/db",
        &format!("password={value}"),
        "user=app",
    ]);
    env.set_var("VAULT_ADDR", &vault.addr);
    env.set_var("VAULT_TOKEN", &vault.token);
    env.write_config(&config("secret", "shop/db"));

    let up = env.devenv_ok(&["up"]);
    let read = || std::fs::read_to_string(env.project.join("out.txt")).unwrap_or_default();
    assert_eq!(read(), value, "DB_PASSWORD in the process\n{up}");
    let mut shown = vec![up];
    for args in [
        &["status", "--json"][..],
        &["status"],
        &["logs", "app"],
        &["config", "show"],
    ] {
        shown.push(env.devenv_ok(args));
    }
    for out in &shown {
        assert!(!out.combined().contains(&value), "{out}");
        assert!(!out.combined().contains(&vault.token), "the token: {out}");
    }
    for secret in [&value, &vault.token] {
        let leaked = files_containing(&env.data_dir, secret.as_bytes());
        assert!(leaked.is_empty(), "stored in {leaked:?}");
    }

    // Nothing changed in Vault: the process is left alone. A new version: restarted.
    let pid = pid_of(&env).expect("app has a pid");
    env.devenv_ok(&["up"]);
    assert_eq!(pid_of(&env), Some(pid), "restarted without a change");
    let rotated = format!("vault-rotated-{}", env.id);
    vault.ok(&[
        "kv",
        "put",
        "secret/shop/db",
        &format!("password={rotated}"),
    ]);
    env.devenv_ok(&["up"]);
    assert!(
        wait_until(Duration::from_secs(20), || read() == rotated),
        "the rotated value did not reach the process: {:?}",
        read()
    );
    assert_ne!(pid_of(&env), Some(pid), "not restarted after the rotation");
    env.devenv_ok(&["down"]);
}

#[test]
fn a_wrong_token_a_missing_path_and_a_kv1_mount_each_fail_up_saying_so() {
    let mut env = TestEnv::new();
    let vault = Vault::start(&env.id);
    vault.ok(&["kv", "put", "secret/shop/db", "password=p"]);
    vault.ok(&["secrets", "enable", "-path=legacy", "-version=1", "kv"]);
    vault.ok(&["kv", "put", "legacy/shop/db", "password=p"]);
    env.set_var("VAULT_ADDR", &vault.addr);

    // A KV v1 mount has no `data/` paths: Vault answers 404 there, and the message
    // says the mount is read as KV v2.
    let cases = [
        (
            "not-the-token",
            "secret",
            "shop/db",
            "refused to read secret/shop/db (HTTP 403)",
        ),
        (
            vault.token.as_str(),
            "secret",
            "shop/nothing",
            "no secret at secret/shop/nothing",
        ),
        (
            vault.token.as_str(),
            "legacy",
            "shop/db",
            "(KV v2 mount `legacy`)",
        ),
    ];
    for (token, mount, path, want) in cases {
        env.set_var("VAULT_TOKEN", token);
        env.write_config(&config(mount, path));
        let up = env.devenv(&["up"]);
        assert_ne!(up.code, Some(0), "{mount}/{path} with {want}: {up}");
        let text = up.combined();
        assert!(
            text.contains("db") && text.contains(want),
            "{mount}/{path}: the error should name the secret and say {want}:\n{up}"
        );
        assert!(!text.contains(&vault.token), "the token is shown: {up}");
        assert!(
            !env.project.join("out.txt").exists(),
            "app started although its secret failed"
        );
    }
}
