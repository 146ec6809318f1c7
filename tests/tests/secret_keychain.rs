//! `provider: keychain` against a real Secret Service: gnome-keyring under its own
//! `dbus-run-session` (a private session bus, no desktop), a keyring unlocked with a
//! password on stdin, the value stored with `secret-tool store` as the README tells a
//! user to. The daemon reads it through the `keyring` crate and a local service gets it
//! in its environment; the value is in none of up's output, status, logs, config show,
//! or any file under the data dir (sled, logs on disk, the daemon's log).
//!
//! Runs unprivileged; needs `dbus-run-session`, `gnome-keyring-daemon` and
//! `secret-tool` (scripts/install-test-tools.sh installs them) and fails saying so when
//! they are missing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use devenv_e2e::files_containing;
use devenv_e2e::TestEnv;

/// A private session bus with an unlocked gnome-keyring on it; ends (bus and keyring
/// daemon) when dropped.
struct KeyringSession {
    child: Child,
    bus: String,
}

impl KeyringSession {
    /// Starts the session with `HOME=home` (the keyring files go under it) and stores
    /// `value` as the entry (service, account).
    fn start(home: &Path, service: &str, account: &str, value: &str) -> Self {
        for tool in ["dbus-run-session", "gnome-keyring-daemon", "secret-tool"] {
            assert!(
                which(tool),
                "`{tool}` is not on PATH: run scripts/install-test-tools.sh (Debian: dbus, gnome-keyring, libsecret-tools)"
            );
        }
        // `--unlock` creates the login keyring with the password read from stdin (or
        // unlocks it) and registers the Secret Service on the session bus; `read`
        // keeps the session open until the test closes stdin.
        let script = r#"set -e
printf %s "$KEYRING_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
printf %s "$SECRET_VALUE" | secret-tool store --label="devenv e2e" service "$SECRET_SERVICE" username "$SECRET_ACCOUNT"
echo "BUS=$DBUS_SESSION_BUS_ADDRESS"
read -r _ || true
"#;
        let mut child = Command::new("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("KEYRING_PASSWORD", "devenv-e2e-keyring-password")
            .env("SECRET_VALUE", value)
            .env("SECRET_SERVICE", service)
            .env("SECRET_ACCOUNT", account)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dbus-run-session");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(bus) = line.strip_prefix("BUS=") {
                    let _ = tx.send(bus.to_owned());
                    return;
                }
            }
        });
        let bus = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(bus) => bus,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(&mut { stderr }, &mut err);
                panic!("the keyring session did not come up within 30 s: {err}");
            }
        };
        // stderr is drained so the session never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut { stderr }, &mut sink);
        });
        Self { child, bus }
    }
}

impl Drop for KeyringSession {
    fn drop(&mut self) {
        // Closing stdin ends the script; dbus-run-session then ends the bus, and
        // gnome-keyring-daemon exits with its bus.
        drop(self.child.stdin.take());
        if devenv_e2e::wait_until(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

#[test]
fn a_keychain_secret_from_gnome_keyring_reaches_a_local_process_and_nothing_else() {
    let mut env = TestEnv::new();
    let value = format!("keychain-sentinel-{}", env.id);
    let service = format!("devenv-e2e-{}", env.id);
    let session = KeyringSession::start(&env.home, &service, "db", &value);
    // The daemon (started by the CLI with these variables) talks to this bus.
    env.set_var("DBUS_SESSION_BUS_ADDRESS", &session.bus);
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: keychain
spec:
  secrets:
    - name: db
      type: external-secret
      provider: keychain
      service: {service}
      keys: {{ DB_PASSWORD: db }}
  services:
    - name: app
      command: [sh, -c, 'printenv DB_PASSWORD | tr -d "\n" > out.txt; echo started; exec sleep 300']
      secrets: [db]
      readiness: {{ exec: {{ command: [test, -f, out.txt] }} }}
"#
    ));
    let up = env.devenv_ok(&["up"]);
    let got = std::fs::read_to_string(env.project.join("out.txt")).unwrap_or_default();
    assert_eq!(got, value, "the keychain's value in the process");

    let shown = [
        up,
        env.devenv_ok(&["status", "--json"]),
        env.devenv_ok(&["status"]),
        env.devenv_ok(&["logs", "app"]),
        env.devenv_ok(&["config", "show"]),
    ];
    for out in &shown {
        assert!(!out.combined().contains(value.as_str()), "{out}");
    }
    let leaked = files_containing(&env.data_dir, value.as_bytes());
    assert!(leaked.is_empty(), "the value is stored in {leaked:?}");

    // An account the keyring does not have: a located error that says how to add it.
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: keychain
spec:
  secrets:
    - name: db
      provider: keychain
      service: {service}
      keys: {{ DB_PASSWORD: nobody }}
  services:
    - name: app
      command: [sh, -c, 'exec sleep 300']
      secrets: [db]
"#
    ));
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.combined().contains("no entry for service")
            && up.combined().contains("secret-tool store"),
        "{up}"
    );
    env.devenv_ok(&["down"]);
    drop(session);
}
