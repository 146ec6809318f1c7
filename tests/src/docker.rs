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

/// The tag of the postgres test image; `postgres_image` makes it once per engine.
pub const POSTGRES: &str = "devenv-test/postgres:debian";

/// The entrypoint of the postgres test image: the official image's contract
/// (`POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`, `POSTGRES_INITDB_ARGS`,
/// `POSTGRES_HOST_AUTH_METHOD`, `PGDATA`) on a first start, then the server on all
/// addresses. It runs as the image's `postgres` user.
const POSTGRES_ENTRYPOINT: &str = r#"#!/bin/sh
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
        echo "Error: POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    # shellcheck disable=SC2086
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C \
        --auth-local=trust --auth-host="$auth" ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    echo "host all all all $auth" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /tmp" -w start
    if [ "$db" != postgres ]; then
        psql -h /tmp -U "$user" -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\""
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /tmp
"#;

/// Copies `from` (a file) to the same path under `root`.
fn copy_into(root: &Path, from: &Path) {
    let to = root.join(from.strip_prefix("/").unwrap_or(from));
    std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

/// A postgres image made from Debian's postgresql package on this machine (no
/// registry is reachable): busybox, the server's binaries, modules, share files and
/// the libraries they link, tzdata, and an entrypoint with the official image's
/// environment contract. Imported once per engine; returns its tag.
pub fn postgres_image() -> &'static str {
    require_engine();
    if docker(&["image", "inspect", POSTGRES]).status.success() {
        return POSTGRES;
    }
    let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.retain(|p| p.join("bin/postgres").exists());
    versions.sort();
    let home = versions.pop().unwrap_or_else(|| {
        panic!("Debian's postgresql package is not installed (/usr/lib/postgresql/*/bin/postgres): apt-get install postgresql")
    });
    let version = home
        .file_name()
        .expect("version")
        .to_string_lossy()
        .into_owned();
    busybox_image();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("rootfs");
    for d in [
        "bin",
        "tmp",
        "etc",
        "proc",
        "sys",
        "dev",
        "var/lib/postgresql/data",
        "var/run/postgresql",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    let mut linked: Vec<std::path::PathBuf> = Vec::new();
    for bin in ["postgres", "initdb", "pg_ctl", "psql"] {
        linked.push(home.join("bin").join(bin));
    }
    for e in std::fs::read_dir(home.join("lib"))
        .expect("the server's modules")
        .flatten()
    {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        // JIT (LLVM) is optional and large: the server runs without it.
        if name.ends_with(".so") && !name.starts_with("llvmjit") {
            linked.push(p);
        }
    }
    let mut libs = std::collections::BTreeSet::new();
    for file in &linked {
        copy_into(&root, file);
        let ldd = Command::new("ldd").arg(file).output().expect("ldd");
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // "libx.so => /lib/x/libx.so (0x..)" or "/lib64/ld-linux-x86-64.so.2 (0x..)"
            if let Some(p) = line
                .split("=>")
                .last()
                .and_then(|r| r.split_whitespace().next())
                .filter(|p| p.starts_with('/'))
            {
                libs.insert(std::path::PathBuf::from(p));
            }
        }
    }
    for lib in &libs {
        copy_into(&root, lib);
    }
    for tree in [
        format!("/usr/share/postgresql/{version}"),
        "/usr/share/zoneinfo".into(),
    ] {
        std::fs::create_dir_all(root.join(tree.trim_start_matches('/'))).expect("mkdir");
        let st = Command::new("cp")
            .args([
                "-a",
                &format!("{tree}/."),
                &root.join(tree.trim_start_matches('/')).to_string_lossy(),
            ])
            .status()
            .expect("cp");
        assert!(st.success(), "copying {tree} failed");
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\npostgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\npostgres:x:999:\n").expect("group");
    let entry = root.join("usr/local/bin/docker-entrypoint.sh");
    std::fs::create_dir_all(entry.parent().expect("dir")).expect("mkdir");
    std::fs::write(&entry, POSTGRES_ENTRYPOINT).expect("entrypoint");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    for d in [
        "var/lib/postgresql",
        "var/lib/postgresql/data",
        "var/run/postgresql",
    ] {
        std::os::unix::fs::chown(root.join(d), Some(999), Some(999))
            .unwrap_or_else(|e| panic!("chown {d} (the container tests run as root): {e}"));
    }
    std::fs::set_permissions(
        root.join("var/lib/postgresql/data"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    let tar = dir.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar of the postgres rootfs failed");
    let out = docker(&[
        "import",
        "--change",
        &format!("ENV PATH=/usr/lib/postgresql/{version}/bin:/usr/local/bin:/bin TZ=UTC PGDATA=/var/lib/postgresql/data"),
        "--change",
        "USER postgres",
        "--change",
        "ENTRYPOINT [\"docker-entrypoint.sh\"]",
        "--change",
        "EXPOSE 5432",
        &tar.to_string_lossy(),
        POSTGRES,
    ]);
    assert!(
        out.status.success(),
        "docker import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    POSTGRES
}
