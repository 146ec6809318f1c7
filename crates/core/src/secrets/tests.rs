use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::config::Command;

const SENTINEL: &str = "s3ntinel-Value-93f1";

fn secret(source: SecretSource) -> Secret {
    Secret {
        name: "db".into(),
        data: BTreeMap::new(),
        source,
        revision: String::new(),
    }
}

fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn path_vars() -> BTreeMap<String, String> {
    BTreeMap::from([("PATH".into(), std::env::var("PATH").unwrap_or_default())])
}

async fn read_one(
    s: SecretSource,
    vars: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SecretErrorKind> {
    let dir = std::env::temp_dir();
    read(&secret(s), &dir, vars).await
}

#[tokio::test]
async fn env_reads_the_clients_variables_and_names_a_missing_one() {
    let vars = BTreeMap::from([("MY_PW".into(), SENTINEL.into())]);
    let v = read_one(
        SecretSource::Env {
            keys: keys(&[("DB_PASSWORD", "MY_PW")]),
        },
        &vars,
    )
    .await
    .unwrap();
    assert_eq!(v["DB_PASSWORD"], SENTINEL);
    let e = read_one(
        SecretSource::Env {
            keys: keys(&[("X", "DEVENV_TEST_SURELY_UNSET_VAR")]),
        },
        &vars,
    )
    .await
    .unwrap_err();
    assert!(matches!(&e, SecretErrorKind::MissingVar(v) if v == "DEVENV_TEST_SURELY_UNSET_VAR"));
}

#[tokio::test]
async fn files_dotenv_and_json_with_keys_picking_and_renaming() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("s.env");
    std::fs::write(&env_file, format!("# c\nPW={SENTINEL}\nUSER=app\n")).unwrap();
    let v = read_one(
        SecretSource::File {
            path: env_file.clone(),
            keys: BTreeMap::new(),
        },
        &BTreeMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(v["PW"], SENTINEL);
    assert_eq!(v["USER"], "app");
    let json = dir.path().join("s.json");
    std::fs::write(
        &json,
        format!(r#"{{"password": "{SENTINEL}", "port": 5432}}"#),
    )
    .unwrap();
    let v = read_one(
        SecretSource::File {
            path: json.clone(),
            keys: keys(&[("DB_PASSWORD", "password"), ("DB_PORT", "port")]),
        },
        &BTreeMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(v, keys(&[("DB_PASSWORD", SENTINEL), ("DB_PORT", "5432")]));
    let e = read_one(
        SecretSource::File {
            path: json,
            keys: keys(&[("X", "nope")]),
        },
        &BTreeMap::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(&e, SecretErrorKind::MissingField { field, .. } if field == "nope"));
    // A broken line is named by number, its text (a value, likely) is not shown.
    std::fs::write(&env_file, format!("OK=1\n{SENTINEL}\n")).unwrap();
    let e = read_one(
        SecretSource::File {
            path: env_file,
            keys: BTreeMap::new(),
        },
        &BTreeMap::new(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("line 2") && !e.contains(SENTINEL), "{e}");
}

#[tokio::test]
async fn a_command_prints_one_value_or_a_json_map() {
    let one = SecretSource::Command {
        command: Command::Exec(vec!["printf".into(), format!("{SENTINEL}\n")]),
        key: Some("TOKEN".into()),
        keys: BTreeMap::new(),
        timeout: Duration::from_secs(10),
    };
    let v = read_one(one, &path_vars()).await.unwrap();
    assert_eq!(v["TOKEN"], SENTINEL, "the final line break is dropped");
    // The shape of `vault kv get -format=json`: values under data.data.
    let map = SecretSource::Command {
        command: Command::Shell(format!(
            r#"echo '{{"request_id":"x","data":{{"data":{{"password":"{SENTINEL}"}},"metadata":{{}}}}}}'"#
        )),
        key: None,
        keys: keys(&[("PGPASSWORD", "password")]),
        timeout: Duration::from_secs(10),
    };
    let v = read_one(map, &path_vars()).await.unwrap();
    assert_eq!(v["PGPASSWORD"], SENTINEL);
}

#[tokio::test]
async fn command_failures_say_why_without_the_output() {
    let cmd = |c: &str, timeout| SecretSource::Command {
        command: Command::Shell(c.into()),
        key: None,
        keys: BTreeMap::new(),
        timeout,
    };
    let e = read_one(
        cmd(
            &format!(
                "echo {SENTINEL}; echo 'Error: shop/db is not in the password store.' >&2; exit 1"
            ),
            Duration::from_secs(10),
        ),
        &path_vars(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "`echo` exited with 1; stderr: Error: shop/db is not in the password store."
    );
    let e = read_one(
        cmd(&format!("echo {SENTINEL}"), Duration::from_secs(10)),
        &path_vars(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("not a JSON object") && !e.contains(SENTINEL),
        "{e}"
    );
    let started = std::time::Instant::now();
    let e = read_one(cmd("sleep 30", Duration::from_secs(1)), &path_vars())
        .await
        .unwrap_err();
    assert!(matches!(e, SecretErrorKind::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let e = read_one(
        SecretSource::Command {
            command: Command::Exec(vec!["devenv-no-such-password-tool".into()]),
            key: Some("K".into()),
            keys: BTreeMap::new(),
            timeout: Duration::from_secs(5),
        },
        &path_vars(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, SecretErrorKind::NotFound { .. }), "{e}");
    let e = read_one(
        cmd("head -c 2000000 /dev/zero", Duration::from_secs(10)),
        &path_vars(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, SecretErrorKind::OutputTooLarge { .. }), "{e}");
}
