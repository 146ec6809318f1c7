//! A real HashiCorp Vault for the `provider: vault` tests: the binary that
//! scripts/build-vault.sh leaves in the tools cache (the test command's install step
//! builds it), run as `vault server -dev` on a free loopback port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_ports, wait_until};

const VAULT_VERSION: &str = "v1.21.0";

/// The binary `scripts/build-vault.sh` leaves in the tools cache (or `$DEVENV_VAULT`).
pub fn vault_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DEVENV_VAULT") {
        return PathBuf::from(p);
    }
    let tools = std::env::var_os("DEVENV_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/devenv-tools")
        });
    let bin = tools.join(format!("vault-{VAULT_VERSION}/vault"));
    assert!(
        bin.is_file(),
        "{} is missing: build it with scripts/build-vault.sh (the test command's install step does)",
        bin.display()
    );
    bin
}

/// `vault server -dev` on a free loopback port, killed on drop.
pub struct Vault {
    child: Child,
    pub addr: String,
    pub token: String,
    bin: PathBuf,
}

impl Vault {
    pub fn start(id: &str) -> Vault {
        let bin = vault_bin();
        let port = free_ports(1)[0];
        let addr = format!("http://127.0.0.1:{port}");
        let token = format!("root-{id}");
        let log = std::fs::File::create(std::env::temp_dir().join(format!("vault-{id}.log")))
            .expect("vault log");
        let child = Command::new(&bin)
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env_remove("VAULT_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start vault server -dev");
        let vault = Vault {
            child,
            addr,
            token,
            bin,
        };
        // Unsealed and serving: `vault status` exits 0 (2 while sealed, 1 on errors).
        assert!(
            wait_until(Duration::from_secs(60), || vault
                .cli(&["status"])
                .status
                .success()),
            "vault server -dev did not come up on {}",
            vault.addr
        );
        vault
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token)
            .output()
            .expect("run the vault CLI")
    }

    pub fn ok(&self, args: &[&str]) {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "vault {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
