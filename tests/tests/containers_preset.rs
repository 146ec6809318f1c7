//! `type: redis` with `runtime: container`: the preset runs its image on the real
//! engine with the same contract as locally (`REDIS_PASSWORD` becomes
//! `--requirepass`), gated by the preset's probe at the container's address. No
//! registry is reachable, so the image is made here from the host's redis-server and
//! the libraries it links (`image:` overrides the preset's default `redis:7`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use devenv_e2e::docker::{containers_of, require_engine, EngineCleanup};
use devenv_e2e::{free_ports, TestEnv};

const REDIS: &str = "devenv-test/redis:7";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().expect("docker")
}

/// A rootfs of busybox, the host's redis-server and its libraries, imported once.
fn redis_image() -> &'static str {
    require_engine();
    if docker(&["image", "inspect", REDIS]).status.success() {
        return REDIS;
    }
    let server = Path::new("/usr/bin/redis-server");
    assert!(
        server.exists(),
        "redis-server is not installed: apt-get install redis-server"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    for d in ["bin", "usr/bin", "tmp", "data", "etc", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::copy(server, root.join("usr/bin/redis-server")).unwrap();
    let ldd = Command::new("ldd").arg(server).output().expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libx.so => /lib/x/libx.so (0x..)" or "/lib64/ld-linux-x86-64.so.2 (0x..)"
        let path = line
            .split("=>")
            .last()
            .and_then(|r| r.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(p) = path {
            let to = root.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(p, &to).unwrap();
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    let tar = dir.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let out = docker(&[
        "import",
        "--change",
        "ENV PATH=/usr/bin:/bin",
        "--change",
        "WORKDIR /data",
        "--change",
        "CMD [\"redis-server\", \"--protected-mode\", \"no\"]",
        &tar.to_string_lossy(),
        REDIS,
    ]);
    assert!(
        out.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    REDIS
}

fn ask(port: u16, commands: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forward");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(commands.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("PONG")
        && !String::from_utf8_lossy(&got).contains("NOAUTH")
    {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
#[ignore = "needs a Docker engine: CI runs the ignored set as root, dockerd started by scripts/install-test-tools.sh"]
fn a_redis_preset_in_a_container_with_its_password() {
    let image = redis_image();
    let name = format!("cpreset-{}", std::process::id());
    let _cleanup = EngineCleanup(name.clone());
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {name}
spec:
  services:
    - name: cache
      type: redis
      runtime: container
      image: {image}
      env: {{ REDIS_PASSWORD: s3cret-pw }}
      forward: ["{port}:6379"]
"#
    ));
    env.devenv_ok(&["up"]);
    let status = env.status_json();
    let cache = &status["services"][0];
    assert_eq!(cache["runtime"], "container", "{status}");
    assert_eq!(cache["state"], "ready", "{status}");

    assert!(
        ask(port, "PING\r\n").contains("NOAUTH"),
        "a password is required"
    );
    let answer = ask(port, "AUTH s3cret-pw\r\nPING\r\n");
    assert!(
        answer.contains("+OK") && answer.contains("PONG"),
        "{answer}"
    );
    let logs = env.devenv_ok(&["logs", "cache"]).stdout;
    assert!(
        !logs.contains("s3cret-pw"),
        "the password is not in the logs"
    );

    env.devenv_ok(&["down"]);
    assert!(containers_of(&name).is_empty());
}

/// `psql` on the host against 127.0.0.1:`port` as `app` with `password`.
fn psql(port: u16, password: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "app",
            "-d",
            "shop",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .unwrap_or_else(|e| panic!("psql (postgresql-client) is needed by this test: {e}"))
}

#[test]
#[ignore = "needs a Docker engine: CI runs the ignored set as root, dockerd started by scripts/install-test-tools.sh"]
fn a_postgres_preset_in_a_container_with_the_images_contract() {
    let image = devenv_e2e::docker::postgres_image();
    let name = format!("cpg-{}", std::process::id());
    let _cleanup = EngineCleanup(name.clone());
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    // A local oneshot reaches the database through its forward with a DATABASE_URL,
    // as an app would; the data is on a named volume.
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {name}
spec:
  volumes: [{{ name: pgdata, type: persistent }}]
  services:
    - name: db
      type: postgresql
      runtime: container
      image: {image}
      env: {{ POSTGRES_USER: app, POSTGRES_PASSWORD: pg-s3cret, POSTGRES_DB: shop }}
      forward: ["{port}:5432"]
      volumes: ["pgdata:/var/lib/postgresql/data"]
    - name: migrate
      oneshot: true
      dependencies: [db]
      env: {{ DATABASE_URL: "postgres://app:pg-s3cret@127.0.0.1:{port}/shop" }}
      command: psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c "create table if not exists runs (n int); insert into runs values (1)"
"#
    ));
    env.devenv_ok(&["up"]);
    let status = env.status_json();
    let states = env.states();
    assert_eq!(states["db"], "ready", "{status}");
    assert_eq!(states["migrate"], "completed", "{status}");
    let db = status["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "db"))
        .expect("db");
    assert_eq!(db["runtime"], "container", "{status}");

    // The image's contract: the user, its password and the database it named.
    let out = psql(
        port,
        "pg-s3cret",
        "select current_user, current_database(), count(*) from runs",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app|shop|1");
    let wrong = psql(port, "not-the-password", "select 1");
    assert!(!wrong.status.success(), "a wrong password got in");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    // Inside the container, through the engine's exec.
    let out = env.devenv_ok(&[
        "exec",
        "db",
        "--",
        "psql",
        "-h",
        "/tmp",
        "-U",
        "app",
        "-d",
        "shop",
        "-tAc",
        "select 40 + 2",
    ]);
    assert_eq!(out.stdout.trim(), "42", "{out}");
    let logs = env.devenv_ok(&["logs", "db"]).stdout;
    assert!(!logs.contains("pg-s3cret"), "the password is in the logs");

    // The named volume keeps the data across down/up; `down --volumes` removes it.
    env.devenv_ok(&["down"]);
    assert!(containers_of(&name).is_empty());
    env.devenv_ok(&["up"]);
    let out = psql(port, "pg-s3cret", "select count(*) from runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "2",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.devenv_ok(&["down", "--volumes"]);
    assert!(containers_of(&name).is_empty());
}
