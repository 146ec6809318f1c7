//! Finding (and, once per test binary, building) the `devenvd` and `devenv` binaries.
//!
//! `env!("CARGO_BIN_EXE_..")` only covers binaries of the same package, so the
//! workspace's target dir is searched instead. Each test binary runs
//! `cargo build -p devenvd -p devenv-cli` once, so a test never runs stale binaries;
//! set `DEVENV_E2E_NO_BUILD=1` to use whatever is there.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// Absolute paths of the binaries under test.
#[derive(Debug)]
pub struct Bins {
    pub devenvd: PathBuf,
    pub devenv: PathBuf,
    pub profile: Profile,
}

static DEBUG: OnceLock<Bins> = OnceLock::new();
static RELEASE: OnceLock<Bins> = OnceLock::new();

const BUILD_HINT: &str = "build them first with cargo build -p devenvd -p devenv-cli";

impl Bins {
    /// The binaries of `profile`, built (once per process) unless `DEVENV_E2E_NO_BUILD`
    /// is set. Panics with what to do when they cannot be had.
    pub fn get(profile: Profile) -> &'static Bins {
        let cell = match profile {
            Profile::Debug => &DEBUG,
            Profile::Release => &RELEASE,
        };
        cell.get_or_init(|| {
            if std::env::var_os("DEVENV_E2E_NO_BUILD").is_none() {
                if let Err(e) = build(profile) {
                    panic!("cannot build the binaries under test: {e}\n({BUILD_HINT})");
                }
            }
            let dir = target_dir().join(profile.dir());
            let bins = Bins {
                devenvd: dir.join("devenvd"),
                devenv: dir.join("devenv"),
                profile,
            };
            for b in [&bins.devenvd, &bins.devenv] {
                assert!(
                    b.is_file(),
                    "{} is missing: {BUILD_HINT}{}",
                    b.display(),
                    release_flag(profile)
                );
            }
            bins
        })
    }
}

fn release_flag(profile: Profile) -> &'static str {
    match profile {
        Profile::Debug => "",
        Profile::Release => " --release",
    }
}

fn build(profile: Profile) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "devenvd", "-p", "devenv-cli"]);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    // Output goes to our stderr, which the test harness captures per test.
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo build{} failed ({status})",
            release_flag(profile)
        ))
    }
}

/// The workspace root: the parent of this crate's manifest dir.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `$CARGO_TARGET_DIR` (relative to the workspace root), else `<workspace>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}
