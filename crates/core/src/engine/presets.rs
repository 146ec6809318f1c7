//! Presets without a cluster: `type: redis` / `type: postgresql` run as local processes
//! from the binaries on PATH, with their data under devenv's state directory (kept
//! across `down`/`up` like a volume).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Command, Preset, Probe, Readiness, Service};

/// Fills in the command, port and readiness a local preset service runs with. Errors
/// name the missing binary and how to get it.
pub fn localize(
    svc: &Service,
    data_root: &Path,
    path_var: Option<&str>,
) -> Result<Service, String> {
    let Some(preset) = svc.preset else {
        return Ok(svc.clone());
    };
    if svc.command.is_some() {
        return Ok(svc.clone());
    }
    let mut out = svc.clone();
    let data = data_root.join(&svc.name);
    let q = |p: &Path| shell_quote(&p.display().to_string());
    let (port, command) = match preset {
        Preset::Redis => {
            let port = svc.ports.first().copied().unwrap_or(6379);
            let bin = find(&["redis-server"], path_var).ok_or(
                "redis-server is not installed (needed by the redis preset without a cluster): install Redis (e.g. `apt install redis-server`, `brew install redis`) or configure spec.cluster",
            )?;
            (
                port,
                format!(
                    "mkdir -p {d} && exec {bin} --port {port} --bind 127.0.0.1 --dir {d} --appendonly yes --protected-mode no",
                    d = q(&data),
                    bin = q(&bin)
                ),
            )
        }
        Preset::Postgresql => {
            let port = svc.ports.first().copied().unwrap_or(5432);
            let hint = "install PostgreSQL (e.g. `apt install postgresql`, `brew install postgresql`) or configure spec.cluster";
            let postgres = find(&["postgres"], path_var).ok_or(format!(
                "postgres is not installed (needed by the postgresql preset without a cluster): {hint}"
            ))?;
            let initdb = postgres
                .parent()
                .map(|d| d.join("initdb"))
                .filter(|p| p.exists())
                .or_else(|| find(&["initdb"], path_var))
                .ok_or(format!("initdb is not installed: {hint}"))?;
            let user = svc
                .env
                .get("POSTGRES_USER")
                .cloned()
                .unwrap_or_else(|| "postgres".into());
            (
                port,
                format!(
                    "mkdir -p {d} && chmod 700 {d} && {{ [ -f {d}/PG_VERSION ] || {initdb} -D {d} -U {u} --auth=trust >/dev/null; }} && exec {pg} -D {d} -p {port} -k {d} -c listen_addresses=127.0.0.1",
                    d = q(&data),
                    initdb = q(&initdb),
                    pg = q(&postgres),
                    u = shell_quote(&user)
                ),
            )
        }
    };
    out.command = Some(Command::Shell(command));
    if out.ports.is_empty() {
        out.ports = vec![port];
    }
    if out.readiness.is_none() {
        out.readiness = Some(Readiness {
            probe: Probe::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
            failure_threshold: 3,
        });
    }
    Ok(out)
}

/// The first of `names` on PATH, then in Debian's versioned PostgreSQL directories.
fn find(names: &[&str], path_var: Option<&str>) -> Option<PathBuf> {
    let path = path_var
        .map(str::to_owned)
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    for d in dirs {
        for n in names {
            let p = d.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_is_named_with_a_hint() {
        let mut svc = Service::test("cache");
        svc.preset = Some(Preset::Redis);
        let err = localize(&svc, Path::new("/tmp/x"), Some("/nonexistent")).unwrap_err();
        assert!(err.starts_with("redis-server is not installed"), "{err}");
    }
}
