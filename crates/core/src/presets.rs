//! Presets without a cluster: `type: redis` / `type: postgresql` run as local processes
//! from the binaries on PATH, honouring the official images' environment contract
//! (`POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`, `POSTGRES_INITDB_ARGS`,
//! `POSTGRES_HOST_AUTH_METHOD`; `REDIS_PASSWORD`), with their data under devenv's data
//! dir (`<data dir>/envs/<env key>/presets/<service>`, kept across `down`/`up` like a
//! volume, removed by `down --volumes`).
//!
//! The same names mean the same on Kubernetes (see `kube/render.rs`), so a project
//! moves between the two without changing its config.

use crate::config::{preset, Command, Preset, Service};
use std::path::{Path, PathBuf};

/// Why a preset cannot run locally. Each names what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("{binary} is not installed (needed by the {preset} preset without a cluster): {hint}")]
    MissingBinary {
        binary: &'static str,
        preset: &'static str,
        hint: &'static str,
    },
    #[error("the postgresql preset needs POSTGRES_PASSWORD (as the official image does): set `env: {{ POSTGRES_PASSWORD: ... }}`, or `POSTGRES_HOST_AUTH_METHOD: trust` to allow connections without a password")]
    NoPassword,
    #[error("devenvd runs as root and initdb/postgres refuse to: they run as an unprivileged user, but neither `postgres` nor `nobody` exists on this machine (create a `postgres` system user)")]
    NoUnprivilegedUser,
    #[error("devenvd runs as root, so postgres runs as user {user} through `setpriv`, which is not installed (it is part of util-linux)")]
    NoSetpriv { user: String },
    #[error("cannot move the preset's data from {from} to {to}: {source}")]
    Migrate {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const PG_HINT: &str = "install PostgreSQL (e.g. `apt install postgresql`, `brew install postgresql`) or configure spec.cluster";
const REDIS_HINT: &str = "install Redis (e.g. `apt install redis-server`, `brew install redis`) or configure spec.cluster";

pub use crate::config::preset::{postgres_has_auth, vars};

/// Where a local preset keeps its data: `<env dir>/presets/<service>`.
pub fn data_dir(env_dir: &Path, service: &str) -> PathBuf {
    env_dir.join("presets").join(service)
}

/// Where earlier versions of devenv put it: the state dir joined with the environment
/// id, which is an absolute path, so the data landed beside the project (`<project>#/db`).
pub fn legacy_data_dir(state_dir: &Path, env_id: &str, service: &str) -> PathBuf {
    state_dir.join("presets").join(env_id).join(service)
}

/// The user an unprivileged server runs as when devenvd is root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// `setpriv`, which switches to it.
    setpriv: PathBuf,
}

/// Where and how a preset runs.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    /// `<env dir>/presets/<service>`.
    pub data: &'a Path,
    /// PATH of the client, where the binaries are looked up.
    pub path_var: Option<&'a str>,
    /// Set when devenvd runs as root (see [`run_as`]).
    pub run_as: Option<&'a RunAs>,
}

/// When devenvd is root: the `postgres` system user if there is one, else `nobody`.
/// initdb and postgres refuse to run as root.
pub fn run_as(path_var: Option<&str>) -> Result<Option<RunAs>, PresetError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = ["postgres", "nobody"]
        .into_iter()
        .find_map(|n| nix::unistd::User::from_name(n).ok().flatten())
        .ok_or(PresetError::NoUnprivilegedUser)?;
    let setpriv = find(&["setpriv"], path_var)
        .or_else(|| {
            Some(PathBuf::from("/usr/bin/setpriv")).filter(|p| crate::process::is_executable(p))
        })
        .ok_or_else(|| PresetError::NoSetpriv {
            user: user.name.clone(),
        })?;
    Ok(Some(RunAs {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        setpriv,
    }))
}

/// Fills in the command a local preset service runs with; its port and readiness probe
/// were filled in when the config was checked (`config::preset`). Errors name the
/// missing binary and how to get it.
pub fn localize(svc: &Service, at: &Placement<'_>) -> Result<Service, PresetError> {
    let Some(preset) = svc.preset else {
        return Ok(svc.clone());
    };
    if svc.command.is_some() {
        return Ok(svc.clone());
    }
    let port = svc
        .ports
        .first()
        .copied()
        .unwrap_or_else(|| preset::default_port(preset));
    let command = match preset {
        Preset::Redis => redis(svc, port, at)?,
        Preset::Postgresql => postgres(svc, port, at)?,
    };
    let mut out = svc.clone();
    out.command = Some(Command::Shell(command));
    Ok(out)
}

fn redis(svc: &Service, port: u16, at: &Placement<'_>) -> Result<String, PresetError> {
    let bin = find(&["redis-server"], at.path_var).ok_or(PresetError::MissingBinary {
        binary: "redis-server",
        preset: "redis",
        hint: REDIS_HINT,
    })?;
    let password = svc.env.get(vars::REDIS_PASSWORD).filter(|p| !p.is_empty());
    // The password goes in on stdin (redis-server's `-` config source), never on the
    // command line where `ps` shows it. Without one, protected mode stays on and the
    // server listens on loopback only.
    let auth = if password.is_some() {
        "printf 'requirepass \"%s\"\\n' \"$(printf '%s' \"$REDIS_PASSWORD\" | sed 's/[\\\\\"]/\\\\&/g')\" | "
    } else {
        ": | "
    };
    let command = format!(
        "mkdir -p {d} && {auth}exec {bin} - --port {port} --bind 127.0.0.1 --dir {d} --appendonly yes --protected-mode yes",
        d = q(at.data),
        bin = q(&bin),
    );
    Ok(command)
}

fn postgres(svc: &Service, port: u16, at: &Placement<'_>) -> Result<String, PresetError> {
    let missing = |binary| PresetError::MissingBinary {
        binary,
        preset: "postgresql",
        hint: PG_HINT,
    };
    let postgres = find(&["postgres"], at.path_var).ok_or(missing("postgres"))?;
    let initdb = postgres
        .parent()
        .map(|d| d.join("initdb"))
        .filter(|p| crate::process::is_executable(p))
        .or_else(|| find(&["initdb"], at.path_var))
        .ok_or(missing("initdb"))?;
    if !postgres_has_auth(&svc.env) {
        return Err(PresetError::NoPassword);
    }
    let env = |k: &str| svc.env.get(k).filter(|v| !v.is_empty());
    let user = env(vars::POSTGRES_USER)
        .cloned()
        .unwrap_or_else(|| "postgres".into());
    // The image's default: a database named like the user.
    let db = env(vars::POSTGRES_DB)
        .cloned()
        .unwrap_or_else(|| user.clone());
    let host_auth = env(vars::POSTGRES_HOST_AUTH_METHOD)
        .cloned()
        .unwrap_or_else(|| "scram-sha-256".into());
    let has_password = env(vars::POSTGRES_PASSWORD).is_some();
    // Were the socket turned on (POSTGRES_INITDB_ARGS can't, but a user's
    // postgresql.conf could), it is no way around the password.
    let local_auth = if has_password {
        "scram-sha-256"
    } else {
        host_auth.as_str()
    };
    let locale = if cfg!(target_os = "linux") {
        "C.UTF-8"
    } else {
        // macOS has no C.UTF-8; C with UTF8 encoding is the portable equivalent.
        "C"
    };

    let d = q(at.data);
    let mut s = String::from("set -ef; umask 077; ");
    // As root: initdb and postgres refuse to run, so they run as an unprivileged user
    // (`setpriv`). devenv's data dir is private to root (0700, often under /root), so
    // that user could not reach its data by path; the shell opens the directory as
    // root and the server uses it through that descriptor (/proc/self/fd/3), which
    // bypasses the ancestors' permissions.
    // The unix socket is off: TCP on loopback with a password is the one way in (a
    // socket under a long data dir path could also exceed the 107 bytes a socket path
    // may have, and postgres would not start).
    let (wrap, pgdata) = match at.run_as {
        Some(r) => {
            s += &format!(
                "mkdir -p {d}; [ \"$(stat -c %u {d})\" = {uid} ] || chown -R {uid}:{gid} {d}; chmod 700 {d}; exec 3<{d}; ",
                uid = r.uid,
                gid = r.gid
            );
            s += &format!(
                "echo \"devenv: initdb and postgres run as user {name} (uid {uid}): devenvd runs as root\"; ",
                name = r.name,
                uid = r.uid
            );
            (
                format!(
                    "{} --reuid={} --regid={} --init-groups -- ",
                    q(&r.setpriv),
                    r.uid,
                    r.gid
                ),
                "/proc/self/fd/3".to_owned(),
            )
        }
        None => {
            s += &format!("mkdir -p {d}; chmod 700 {d}; ");
            (String::new(), at.data.display().to_string())
        }
    };
    let pgdata = shell_quote(&pgdata);
    s += &format!("if [ ! -s {d}/PG_VERSION ]; then ");
    s += &format!(
        "echo \"devenv: initializing a database cluster (user {u}, database {db}, encoding UTF8, locale {locale}, {host_auth} authentication) in {dd}\"; ",
        u = user.replace(['"', '\\', '$', '`'], "_"),
        db = db.replace(['"', '\\', '$', '`'], "_"),
        dd = at.data.display().to_string().replace(['"', '\\', '$', '`'], "_"),
    );
    // The password reaches initdb through a file opened and unlinked at once, readable
    // only by the server's user: never on a command line, never left on disk.
    let pwfile = format!("{d}.pw");
    let pw_arg = if has_password {
        s += &format!(
            "printf '%s\\n' \"$POSTGRES_PASSWORD\" > {pwfile}; exec 4<{pwfile}; rm -f {pwfile}; "
        );
        if let Some(r) = at.run_as {
            // fchown through the descriptor the user will read.
            s += &format!("chown {}:{} /proc/self/fd/4; ", r.uid, r.gid);
        }
        "--pwfile=/dev/fd/4 "
    } else {
        ""
    };
    // No fsync of the ~1,500 new files (half of initdb's time, seconds on a busy
    // machine): this is a development database, and only an OS crash in the seconds
    // after its creation could cost it (`down --volumes` starts over).
    s += &format!(
        "{wrap}{initdb} -D {pgdata} -U {u} {pw_arg}--no-sync --encoding=UTF8 --locale={locale} --auth-host={ha} --auth-local={la} $POSTGRES_INITDB_ARGS >/dev/null; ",
        initdb = q(&initdb),
        u = shell_quote(&user),
        ha = shell_quote(&host_auth),
        la = shell_quote(local_auth),
    );
    if has_password {
        s += "exec 4<&-; ";
    }
    if db != "postgres" {
        // Single-user mode: the database exists before the server first accepts a
        // connection, so readiness means "ready to use".
        let sql = format!("CREATE DATABASE \"{}\";", db.replace('"', "\"\""));
        s += &format!(
            "printf '%s\\n' {sql} | {wrap}{pg} --single -c fsync=off -D {pgdata} postgres >/dev/null; ",
            sql = shell_quote(&sql),
            pg = q(&postgres),
        );
    }
    s += "fi; ";
    s += &format!(
        "exec {wrap}{pg} -D {pgdata} -p {port} -c listen_addresses=localhost -c unix_socket_directories=''",
        pg = q(&postgres),
    );
    Ok(s)
}

/// Where an environment's local presets live and how to reach their binaries.
#[derive(Debug, Clone)]
pub struct Site {
    /// The environment's directory under the data dir (`StateStore::env_dir`).
    pub env_dir: PathBuf,
    /// The state directory, to find data an earlier devenv put beside the project.
    pub state_dir: PathBuf,
    pub env_id: String,
    pub path_var: Option<String>,
}

/// Everything a local preset needs before it first runs: its data moved from where an
/// earlier devenv put it, the user it runs as, the command. Returns the service to run
/// and lines for its log. Not a preset (or one with its own `command`): as it is.
pub async fn prepare(svc: &Service, site: &Site) -> Result<(Service, Vec<String>), PresetError> {
    if svc.preset.is_none() || svc.command.is_some() {
        return Ok((svc.clone(), Vec::new()));
    }
    let data = data_dir(&site.env_dir, &svc.name);
    let legacy = legacy_data_dir(&site.state_dir, &site.env_id, &svc.name);
    let (from, to) = (legacy.clone(), data.clone());
    let moved = tokio::task::spawn_blocking(move || migrate_legacy(&from, &to))
        .await
        .map_err(|e| PresetError::Migrate {
            from: legacy,
            to: data.clone(),
            source: std::io::Error::other(e),
        })??;
    let path_var = site.path_var.as_deref();
    let user = match svc.preset {
        Some(Preset::Postgresql) => run_as(path_var)?,
        _ => None,
    };
    let out = localize(
        svc,
        &Placement {
            data: &data,
            path_var,
            run_as: user.as_ref(),
        },
    )?;
    Ok((out, moved.into_iter().collect()))
}

/// Services with local preset data kept in the environment's dir (what `down`
/// without `--volumes` leaves), sorted.
pub fn kept_data(env_dir: &Path) -> Vec<String> {
    crate::volumes::subdirectories(&env_dir.join("presets"))
}

/// `down --volumes`: removes every local preset's data of the environment (the
/// services are stopped by then). Returns the services whose data it removed.
pub async fn remove_data(env_dir: &Path) -> std::io::Result<Vec<String>> {
    let dir = env_dir.join("presets");
    let names = kept_data(env_dir);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => Ok(names),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Moves data an earlier devenv left beside the project (see [`legacy_data_dir`]) to
/// its place under the data dir, when there is nothing there yet. Returns what it did,
/// for the service's log. Blocking: call it off the async threads.
pub fn migrate_legacy(old: &Path, new: &Path) -> Result<Option<String>, PresetError> {
    if !old.is_dir() || new.exists() {
        return Ok(None);
    }
    let err = |source| PresetError::Migrate {
        from: old.to_path_buf(),
        to: new.to_path_buf(),
        source,
    };
    if let Some(parent) = new.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    if let Err(e) = std::fs::rename(old, new) {
        if e.raw_os_error() != Some(libc::EXDEV) {
            return Err(err(e));
        }
        // Another filesystem: `mv` copies (keeping modes and owners) then removes.
        let status = std::process::Command::new("mv")
            .arg("--")
            .arg(old)
            .arg(new)
            .status()
            .map_err(err)?;
        if !status.success() {
            return Err(err(std::io::Error::other(format!("mv {status}"))));
        }
    }
    // The `<project>#<env>` directory it lived in, when nothing else is left there.
    if let Some(parent) = old.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(Some(format!(
        "moved this preset's data from {} (beside the project, where an earlier devenv put it) to {}",
        old.display(),
        new.display()
    )))
}

/// Whether this machine has the server of `preset` to run it as a local process (on
/// `path_var`, else the daemon's PATH, and in Debian's PostgreSQL directories): what
/// `devenv init --presets` decides a preset's runtime by.
pub fn has_server(preset: Preset, path_var: Option<&str>) -> bool {
    match preset {
        Preset::Redis => find(&["redis-server"], path_var).is_some(),
        Preset::Postgresql => {
            find(&["postgres"], path_var).is_some() && find(&["initdb"], path_var).is_some()
        }
    }
}

/// The first of `names` on PATH (its absolute directories, as the cluster tools are
/// found), then in Debian's versioned PostgreSQL directories, newest first; through
/// the one program finder, [`crate::process::find_program`].
fn find(names: &[&str], path_var: Option<&str>) -> Option<PathBuf> {
    let path = path_var
        .map(str::to_owned)
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    let dirs = std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .chain(versions.into_iter().rev());
    crate::process::find_program(names, dirs)
}

fn q(p: &Path) -> String {
    shell_quote(&p.display().to_string())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Probe;

    fn place<'a>(data: &'a Path, path_var: Option<&'a str>) -> Placement<'a> {
        Placement {
            data,
            path_var,
            run_as: None,
        }
    }

    #[test]
    fn missing_binary_is_named_with_a_hint() {
        let mut svc = Service::test("cache");
        svc.preset = Some(Preset::Redis);
        let err = localize(&svc, &place(Path::new("/tmp/x"), Some("/nonexistent"))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("redis-server is not installed"), "{msg}");
        assert!(matches!(err, PresetError::MissingBinary { .. }));
    }

    #[test]
    fn postgres_without_password_is_refused_unless_trust() {
        let mut svc = Service::test("db");
        svc.preset = Some(Preset::Postgresql);
        let mut env = std::collections::BTreeMap::new();
        assert!(!postgres_has_auth(&env));
        env.insert("POSTGRES_PASSWORD".into(), String::new());
        assert!(!postgres_has_auth(&env), "an empty password is none");
        env.insert("POSTGRES_HOST_AUTH_METHOD".into(), "trust".into());
        assert!(postgres_has_auth(&env));
    }

    #[test]
    fn secrets_stay_off_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        for bin in ["postgres", "initdb", "redis-server"] {
            let p = dir.path().join(bin);
            std::fs::write(&p, "").unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let path_var = dir.path().display().to_string();
        let mut db = Service::test("db");
        db.preset = Some(Preset::Postgresql);
        db.env
            .insert("POSTGRES_PASSWORD".into(), "pg-s3cret".into());
        db.env.insert("POSTGRES_DB".into(), "shop".into());
        db.runtime = crate::config::RuntimeKind::Local;
        preset::apply(&mut db);
        let out = localize(&db, &place(Path::new("/d/db"), Some(&path_var))).unwrap();
        let Some(Command::Shell(cmd)) = &out.command else {
            panic!("{:?}", out.command)
        };
        assert!(!cmd.contains("pg-s3cret"), "{cmd}");
        assert!(
            cmd.contains("--auth-host='scram-sha-256' --auth-local='scram-sha-256'"),
            "{cmd}"
        );
        assert!(cmd.contains("--encoding=UTF8"), "{cmd}");
        assert!(cmd.contains("CREATE DATABASE \"shop\";"), "{cmd}");
        assert!(matches!(
            out.readiness.as_ref().map(|r| &r.probe),
            Some(Probe::Postgres { user, database, port: 5432, .. }) if user == "postgres" && database == "shop"
        ));

        let mut cache = Service::test("cache");
        cache.preset = Some(Preset::Redis);
        cache
            .env
            .insert("REDIS_PASSWORD".into(), "redis-s3cret".into());
        cache.runtime = crate::config::RuntimeKind::Local;
        preset::apply(&mut cache);
        let out = localize(&cache, &place(Path::new("/d/cache"), Some(&path_var))).unwrap();
        let Some(Command::Shell(cmd)) = &out.command else {
            panic!()
        };
        assert!(!cmd.contains("redis-s3cret"), "{cmd}");
        assert!(matches!(
            out.readiness.as_ref().map(|r| &r.probe),
            Some(Probe::Redis { password: Some(p), .. }) if p == "redis-s3cret"
        ));
    }

    #[test]
    fn legacy_data_is_moved_once() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("proj");
        let state = dir.path().join("data/state");
        let id = format!("{}#", project.display());
        let old = legacy_data_dir(&state, &id, "db");
        assert_eq!(old, PathBuf::from(format!("{id}/db")), "beside the project");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("PG_VERSION"), "15\n").unwrap();
        let new = data_dir(&dir.path().join("data/envs/proj-x"), "db");
        let note = migrate_legacy(&old, &new).unwrap().unwrap();
        assert!(note.contains(&old.display().to_string()), "{note}");
        assert_eq!(std::fs::read(new.join("PG_VERSION")).unwrap(), b"15\n");
        assert!(!old.exists() && !PathBuf::from(&id).exists());
        // Nothing left to move, or data already in place: nothing happens.
        assert!(migrate_legacy(&old, &new).unwrap().is_none());
    }
}
