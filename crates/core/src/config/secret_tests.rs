//! `spec.secrets`: providers parse into their sources; mistakes are located errors.

use std::path::Path;

use super::*;

const HEAD: &str = "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\n";

fn load_secrets(secrets: &str) -> (tempfile::TempDir, Result<Loaded, ConfigErrors>) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".devenv")).expect("mkdir");
    let config = format!(
        "{HEAD}spec:\n  secrets:\n{secrets}  services:\n    - name: api\n      command: run\n      secrets: [s]\n"
    );
    std::fs::write(dir.path().join(".devenv/config.yml"), config).expect("write");
    let loaded = load(&LoadRequest {
        start_dir: dir.path().to_path_buf(),
        ..LoadRequest::default()
    });
    (dir, loaded)
}

fn source_of(secrets: &str) -> SecretSource {
    let (_dir, loaded) = load_secrets(secrets);
    let env = loaded.unwrap_or_else(|e| panic!("{e:?}")).environment;
    env.secrets[0].source.clone()
}

fn error_of(secrets: &str) -> ConfigError {
    let (_dir, loaded) = load_secrets(secrets);
    match loaded {
        Ok(_) => panic!("expected an error"),
        Err(ConfigErrors(mut e)) => {
            assert_eq!(e.len(), 1, "{e:#?}");
            e.remove(0)
        }
    }
}

#[test]
fn every_provider_parses_into_its_source() {
    assert_eq!(
        source_of("    - name: s\n      type: kubernetes-secret\n      data: { A: b }\n"),
        SecretSource::Inline
    );
    assert!(matches!(
        source_of("    - name: s\n      type: external-secret\n      provider: env\n      keys: { DB_PASSWORD: MY_PW }\n"),
        SecretSource::Env { keys } if keys["DB_PASSWORD"] == "MY_PW"
    ));
    match source_of("    - name: s\n      provider: file\n      path: ./secrets/dev.env\n") {
        SecretSource::File { path, keys } => {
            assert!(path.ends_with(Path::new("secrets/dev.env")) && path.is_absolute());
            assert!(keys.is_empty());
        }
        other => panic!("{other:?}"),
    }
    match source_of("    - name: s\n      provider: command\n      command: [pass, show, shop/db]\n      key: DB_PASSWORD\n      timeoutSeconds: 5\n") {
        SecretSource::Command { command, key, timeout, .. } => {
            assert_eq!(command, Command::Exec(vec!["pass".into(), "show".into(), "shop/db".into()]));
            assert_eq!(key.as_deref(), Some("DB_PASSWORD"));
            assert_eq!(timeout.as_secs(), 5);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        source_of("    - name: s\n      provider: keychain\n      service: shop\n      keys: { DB_PASSWORD: db }\n"),
        SecretSource::Keychain { service, .. } if service == "shop"
    ));
    match source_of("    - name: s\n      type: external-secret\n      provider: vault\n      path: /shop/db/\n") {
        SecretSource::Vault { mount, path, address, .. } => {
            assert_eq!((mount.as_str(), path.as_str(), address), ("secret", "shop/db", None));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mistakes_are_located_with_a_hint() {
    let e = error_of("    - name: s\n      provider: env\n      path: x\n      keys: { A: B }\n");
    assert_eq!((e.line, e.key.as_str()), (9, "spec.secrets[0].path"), "{e}");
    assert!(e.message.contains("does not apply"), "{e}");
    assert_eq!(e.hint.as_deref(), Some("`env` takes only `keys`"));

    let e = error_of("    - name: s\n      provider: file\n      data: { A: b }\n      path: x\n");
    assert_eq!(e.key, "spec.secrets[0].data", "{e}");

    let e = error_of("    - name: s\n      type: external-secret\n");
    assert!(e.message.contains("has no `provider`"), "{e}");
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("vault")));

    let e = error_of(
        "    - name: s\n      type: kubernetes-secret\n      provider: env\n      keys: { A: B }\n",
    );
    assert_eq!(e.key, "spec.secrets[0].provider", "{e}");

    let e = error_of("    - name: s\n      provider: env\n");
    assert!(e.message.contains("has no `keys`"), "{e}");

    let e = error_of("    - name: s\n      provider: command\n      command: pass show x\n      key: A\n      keys: { B: c }\n");
    assert!(e.message.contains("both `key` and `keys`"), "{e}");

    let e = error_of("    - name: s\n      provider: vault\n      path: shop/db\n      address: localhost:8200\n");
    assert_eq!(e.key, "spec.secrets[0].address", "{e}");

    let e = error_of("    - name: s\n      provider: gpg\n");
    assert_eq!(e.line, 8, "{e}");
    assert!(
        e.to_string().contains("gpg") || e.message.contains("unknown variant"),
        "{e}"
    );
}

#[test]
fn a_postgres_password_may_come_from_an_external_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".devenv")).expect("mkdir");
    let config = format!(
        "{HEAD}spec:\n  secrets:\n    - name: pg\n      provider: env\n      keys: {{ POSTGRES_PASSWORD: PGPW }}\n  services:\n    - name: db\n      type: postgresql\n      secrets: [pg]\n"
    );
    std::fs::write(dir.path().join(".devenv/config.yml"), config).expect("write");
    let loaded = load(&LoadRequest {
        start_dir: dir.path().to_path_buf(),
        ..LoadRequest::default()
    });
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}
