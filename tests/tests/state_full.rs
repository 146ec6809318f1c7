//! State (sled) that cannot reach the disk shows in `devenv daemon status`, not only
//! in the daemon's log: a full filesystem under the state dir, for real.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use devenv_e2e::{wait_until, TestEnv};
use serde_json::Value;

/// A tmpfs mounted on `path`; unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Self(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn daemon_status(env: &TestEnv) -> Value {
    let out = env.devenv_ok(&["daemon", "status", "--json"]);
    serde_json::from_str(&out.stdout).expect("daemon status --json")
}

#[test]
#[ignore = "needs root: mounts a tiny tmpfs"]
fn a_state_dir_without_space_shows_in_daemon_status() {
    let env = TestEnv::new();
    std::fs::create_dir_all(&env.data_dir).unwrap();
    std::fs::set_permissions(&env.data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let fs = Tmpfs::mount(env.data_dir.join("state"), "16m");
    env.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: full\nspec:\n  services:\n    - name: app\n      command: sleep 300\n",
    );
    env.devenv_ok(&["up"]);
    assert_eq!(daemon_status(&env)["state"]["ok"].as_bool(), Some(true));

    // Fill the filesystem: the write stops at ENOSPC.
    let filler = fs.0.join("filler");
    let err = std::fs::write(&filler, vec![0u8; 32 << 20]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");

    // Any change of state now fails to reach the disk: a restart changes the
    // service's recorded status several times.
    let _ = env.devenv(&["restart", "app"]);
    let mut last = Value::Null;
    let failing = wait_until(Duration::from_secs(30), || {
        let _ = env.devenv(&["restart", "app"]);
        last = daemon_status(&env);
        last["state"]["ok"].as_bool() == Some(false)
    });
    assert!(failing, "daemon status never showed the failure: {last}");
    let error = last["state"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("state database") && last["state"]["flush_failures"].as_u64() >= Some(1),
        "{last}"
    );
    let text = env.devenv_ok(&["daemon", "status"]).stdout;
    assert!(text.contains("NOT SAVED"), "{text}");
    // The daemon still serves.
    assert!(env.devenv_ok(&["status"]).stdout.contains("app"));
    eprintln!("state_full: {error}");
    drop(env);
}
