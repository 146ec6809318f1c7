//! The local Docker engine for the container runtime's tests: a busybox image made
//! here (no registry is reachable: a rootfs from Debian's busybox-static, imported),
//! and what devenv left in the engine, found by its labels.

use std::path::Path;
use std::process::Command;

/// The tag of the test image; `busybox_image` makes it once per engine.
pub const BUSYBOX: &str = "devenv-test/busybox:1";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `docker {}`: {e} (install docker.io: scripts/install-test-tools.sh)",
                args.join(" ")
            )
        })
}

/// Panics with the reason when no engine answers: these tests never skip silently.
pub fn require_engine() {
    let out = docker(&["info", "--format", "{{.ServerVersion}}"]);
    assert!(
        out.status.success(),
        "no Docker engine: `docker info` failed: {}\nstart one: scripts/install-test-tools.sh installs docker.io and starts dockerd",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Imports the busybox test image unless the engine has it; returns its tag.
pub fn busybox_image() -> &'static str {
    require_engine();
    if docker(&["image", "inspect", BUSYBOX]).status.success() {
        return BUSYBOX;
    }
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "busybox-static is not installed (/bin/busybox): apt-get install busybox-static"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("rootfs");
    for d in ["bin", "tmp", "etc", "var/www", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy(bb, root.join("bin/busybox")).expect("copy busybox");
    let list = Command::new(bb)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").expect("passwd");
    let tar = dir.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar of the busybox rootfs failed");
    let out = docker(&[
        "import",
        "--change",
        "ENV PATH=/bin",
        "--change",
        "CMD [\"sh\"]",
        &tar.to_string_lossy(),
        BUSYBOX,
    ]);
    assert!(
        out.status.success(),
        "docker import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    BUSYBOX
}

fn lines(out: std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Ids of devenv's containers (any state) of the environment named `env_name`.
pub fn containers_of(env_name: &str) -> Vec<String> {
    lines(docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=dev.devenv.environment={env_name}"),
    ]))
}

/// Names of devenv's networks of the environment named `env_name`.
pub fn networks_of(env_name: &str) -> Vec<String> {
    lines(docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=dev.devenv.environment={env_name}"),
    ]))
}

/// Removes on drop whatever devenv left in the engine for `env_name` (a failed test
/// must not leave containers behind for the next one).
#[derive(Debug)]
pub struct EngineCleanup(pub String);

impl Drop for EngineCleanup {
    fn drop(&mut self) {
        for id in containers_of(&self.0) {
            let _ = docker(&["rm", "-f", "-v", &id]);
        }
        for id in networks_of(&self.0) {
            let _ = docker(&["network", "rm", &id]);
        }
    }
}
