//! bench-containers: time to ready of two containers on the local Docker engine,
//! `devenv up` side by side with `docker-compose up` (Debian's docker-compose 1.29) on
//! the same two services, and one container's start-to-ready overhead beyond the
//! engine's own `docker run`.
//!
//! ```sh
//! scripts/install-test-tools.sh        # docker.io + dockerd, busybox-static
//! apt-get install docker-compose        # the peer, only for this benchmark
//! cargo run --release -p devenv-e2e --bin bench-containers -- [--runs N] [--no-peer]
//! ```
//! It runs release devenvd/devenv (built first unless DEVENV_E2E_NO_BUILD is set).
//!
//! Stack: `web` (busybox httpd, ready when `GET /` answers) and `client` (depends on
//! `web` being ready, fetches it by name, then is ready). The mixed stack (issue 20):
//! `db`, the postgresql preset in a container (the image the tests make from Debian's
//! postgresql), `app`, a container built from a Dockerfile, and `front`, a local
//! process, in one dependency chain; compose runs `front` as a container (it has no
//! host processes). See docs/benchmarks.md.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use devenv_e2e::bench::{positive_arg, Sample};
use devenv_e2e::docker::{busybox_image, postgres_image, EngineCleanup};
use devenv_e2e::{free_ports, http_get, wait_until, Bins, Profile, TestEnv};

#[derive(Debug)]
struct Opts {
    runs: usize,
    peer: bool,
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("bench-containers: {err}");
    }
    eprintln!("usage: bench-containers [--runs N] [--no-peer]");
    std::process::exit(if err.is_empty() { 0 } else { 2 });
}

fn parse_args() -> Opts {
    let mut opts = Opts {
        runs: 5,
        peer: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => opts.runs = positive_arg(&mut args, "--runs", usage),
            "--no-peer" => opts.peer = false,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    opts
}

const WEB: &str = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www";
const CLIENT: &str =
    "wget -q -O- http://web:8080/ && echo fetched && touch /tmp/ok && exec sleep 100000";

fn devenv_config(name: &str, image: &str, port: u16) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {name}
spec:
  services:
    - name: web
      image: {image}
      command: "{WEB}"
      ports: [8080]
      forward: ["{port}:8080"]
      readiness: {{ http: {{ path: /, port: 8080 }}, periodSeconds: 0.1 }}
    - name: client
      image: {image}
      command: "{CLIENT}"
      dependencies: [web]
      readiness: {{ log: {{ pattern: fetched }} }}
"#
    )
}

/// The same stack for docker-compose, with healthchecks every 100 ms (its fastest
/// sensible setting) and `condition: service_healthy` for the dependency.
fn compose_file(image: &str, port: u16) -> String {
    format!(
        r#"version: "2.4"
services:
  web:
    image: {image}
    command: ["sh", "-c", "{WEB}"]
    ports: ["127.0.0.1:{port}:8080"]
    healthcheck: {{ test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"], interval: 100ms, timeout: 1s, retries: 100 }}
  client:
    image: {image}
    command: ["sh", "-c", "{CLIENT}"]
    depends_on: {{ web: {{ condition: service_healthy }} }}
    healthcheck: {{ test: ["CMD", "test", "-f", "/tmp/ok"], interval: 100ms, timeout: 1s, retries: 100 }}
"#
    )
}

const APP: &str = "mkdir -p /www && echo app > /www/index.html && exec httpd -f -p 8081 -h /www";

/// The mixed stack's `app` build context (its Dockerfile on the busybox image).
fn app_context(dir: &std::path::Path, image: &str) {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).expect("mkdir app");
    std::fs::write(
        app.join("Dockerfile"),
        format!("FROM {image}\nCOPY version.txt /version.txt\nCMD [\"sh\", \"-c\", \"{APP}\"]\n"),
    )
    .expect("Dockerfile");
    std::fs::write(app.join("version.txt"), "1\n").expect("version.txt");
}

fn mixed_config(name: &str, pg: &str, app_port: u16, front_port: u16) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {name}
spec:
  services:
    - name: db
      type: postgresql
      runtime: container
      image: {pg}
      env: {{ POSTGRES_USER: app, POSTGRES_PASSWORD: bench-pw, PGPASSWORD: bench-pw }}
      # The compose file's healthcheck, at the same period.
      readiness: {{ exec: {{ command: [psql, -h, 127.0.0.1, -U, app, -d, app, -tAc, "select 1"] }}, periodSeconds: 0.1 }}
    - name: app
      build: {{ context: ./app }}
      ports: [8081]
      forward: ["{app_port}:8081"]
      dependencies: [db]
      readiness: {{ http: {{ path: /, port: 8081 }}, periodSeconds: 0.1 }}
    - name: front
      command: mkdir -p www && echo front > www/index.html && exec busybox httpd -f -p {front_port} -h www
      dependencies: [app]
      readiness: {{ http: {{ path: /, port: {front_port} }}, periodSeconds: 0.1 }}
"#
    )
}

/// The mixed stack for docker-compose: healthchecks every 100 ms, each service
/// started once the one before is healthy; `front` is a container here.
fn mixed_compose(pg: &str, image: &str) -> String {
    format!(
        r#"version: "2.4"
services:
  db:
    image: {pg}
    environment: {{ POSTGRES_USER: app, POSTGRES_PASSWORD: bench-pw, PGPASSWORD: bench-pw }}
    healthcheck: {{ test: ["CMD", "psql", "-h", "127.0.0.1", "-U", "app", "-d", "app", "-tAc", "select 1"], interval: 100ms, timeout: 1s, retries: 300 }}
  app:
    build: ./app
    depends_on: {{ db: {{ condition: service_healthy }} }}
    healthcheck: {{ test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8081/"], interval: 100ms, timeout: 1s, retries: 100 }}
  front:
    image: {image}
    command: ["sh", "-c", "mkdir -p /w && echo front > /w/index.html && exec httpd -f -p 8082 -h /w"]
    depends_on: {{ app: {{ condition: service_healthy }} }}
    healthcheck: {{ test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8082/"], interval: 100ms, timeout: 1s, retries: 100 }}
"#
    )
}

/// `up` of the mixed stack until every service is ready, devenv and (with `peer`)
/// docker-compose; a warm-up run each first builds `app`'s image.
fn mixed(opts: &Opts, image: &str, rows: &mut Vec<(String, String, String)>) {
    let pg = postgres_image();
    let name = format!("benchmix-{}", std::process::id());
    let _cleanup = EngineCleanup(name.clone());
    let env = TestEnv::with_bins(Bins::get(Profile::Release));
    let [app_port, front_port] = free_ports(2)[..] else {
        unreachable!("two ports")
    };
    app_context(&env.project, image);
    env.write_config(&mixed_config(&name, pg, app_port, front_port));
    env.devenv_ok(&["up"]); // builds app's image
    let states = env.states();
    assert!(
        states.values().all(|s| s == "ready"),
        "the mixed stack is not ready: {states:?}"
    );
    env.devenv_ok(&["down", "--volumes"]);
    let mut ours = Sample::default();
    for _ in 0..opts.runs {
        let t = Instant::now();
        env.devenv_ok(&["up"]);
        ours.push(t.elapsed());
        assert_eq!(http_get(front_port, "/").map(|r| r.status), Some(200));
        env.devenv_ok(&["down", "--volumes"]);
    }
    rows.push((
        "mixed: devenv up, db + built app + local front ready (median / p99)".to_owned(),
        format!("{:.0} / {:.0} ms", ours.median(), ours.p99()),
        String::new(),
    ));
    // The image devenv built for `app` (`down` keeps builds: they are the cache).
    run(Command::new("docker").args([
        "image",
        "prune",
        "-af",
        "--filter",
        &format!("label=dev.devenv.environment={name}"),
    ]));
    if !opts.peer {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    app_context(dir.path(), image);
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, mixed_compose(pg, image)).expect("write compose file");
    let project = format!("{name}c");
    let compose = |args: &[&str]| {
        let mut c = Command::new("docker-compose");
        c.arg("-p").arg(&project).arg("-f").arg(&file).args(args);
        c
    };
    let healthy = |limit| {
        wait_until(limit, || {
            ["db", "app", "front"]
                .iter()
                .all(|s| health(&format!("{project}_{s}_1")) == "healthy")
        })
    };
    // Warm-up: builds app's image.
    assert!(run(&mut compose(&["up", "-d"])), "docker-compose up failed");
    assert!(
        healthy(Duration::from_secs(120)),
        "compose's stack never became healthy"
    );
    run(&mut compose(&["down", "-v"]));
    let mut peer = Sample::default();
    for _ in 0..opts.runs {
        let t = Instant::now();
        assert!(run(&mut compose(&["up", "-d"])), "docker-compose up failed");
        let ready = healthy(Duration::from_secs(120));
        peer.push(t.elapsed());
        assert!(ready, "compose's stack never became healthy");
        run(&mut compose(&["down", "-v"]));
    }
    run(&mut compose(&["down", "-v", "--rmi", "local"]));
    rows.push((
        "mixed: docker-compose up -d, until all 3 healthy (median / p99)".to_owned(),
        format!("{:.0} / {:.0} ms", peer.median(), peer.p99()),
        String::new(),
    ));
}

fn run(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn health(container: &str) -> String {
    Command::new("docker")
        .args(["inspect", "-f", "{{.State.Health.Status}}", container])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn main() {
    let opts = parse_args();
    let image = busybox_image();
    let mut rows = Vec::new();

    // devenv: `up` returns when both are ready.
    let name = format!("benchctr-{}", std::process::id());
    let _cleanup = EngineCleanup(name.clone());
    let env = TestEnv::with_bins(Bins::get(Profile::Release));
    let port = free_ports(1)[0];
    env.write_config(&devenv_config(&name, image, port));
    env.devenv_ok(&["status"]); // the daemon warm
    let (mut both, mut one) = (Sample::default(), Sample::default());
    for _ in 0..opts.runs {
        let t = Instant::now();
        env.devenv_ok(&["up"]);
        both.push(t.elapsed());
        env.devenv_ok(&["down"]);
        let t = Instant::now();
        env.devenv_ok(&["up", "web"]);
        one.push(t.elapsed());
        env.devenv_ok(&["down"]);
    }
    rows.push((
        "devenv up: web + client ready (median / p99)".to_owned(),
        format!("{:.0} / {:.0} ms", both.median(), both.p99()),
        String::new(),
    ));
    rows.push((
        "devenv up web: one container ready (median / p99)".to_owned(),
        format!("{:.0} / {:.0} ms", one.median(), one.p99()),
        String::new(),
    ));

    // The engine alone: `docker run -d` of the same web container, until its
    // published port answers (polled every 5 ms).
    let mut engine = Sample::default();
    for i in 0..opts.runs {
        let cname = format!("{name}-raw-{i}");
        let t = Instant::now();
        assert!(
            run(Command::new("docker").args([
                "run",
                "-d",
                "--init",
                "--name",
                &cname,
                "--label",
                &format!("dev.devenv.environment={name}"),
                "-p",
                &format!("127.0.0.1:{port}:8080"),
                image,
                "sh",
                "-c",
                WEB,
            ])),
            "docker run failed"
        );
        let up = wait_until(Duration::from_secs(30), || http_get(port, "/").is_some());
        engine.push(t.elapsed());
        assert!(up, "the raw container never answered");
        run(Command::new("docker").args(["rm", "-f", &cname]));
    }
    rows.push((
        "docker run + port answers: one container (median / p99)".to_owned(),
        format!("{:.0} / {:.0} ms", engine.median(), engine.p99()),
        String::new(),
    ));
    rows.push((
        "devenv overhead over the engine, one container (medians)".to_owned(),
        format!("{:.0} ms", one.median() - engine.median()),
        String::new(),
    ));

    if opts.peer {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("docker-compose.yml");
        std::fs::write(&file, compose_file(image, port)).expect("write compose file");
        let project = format!("{name}c");
        let compose = |args: &[&str]| {
            let mut c = Command::new("docker-compose");
            c.arg("-p").arg(&project).arg("-f").arg(&file).args(args);
            c
        };
        let mut peer = Sample::default();
        for _ in 0..opts.runs {
            let t = Instant::now();
            assert!(run(&mut compose(&["up", "-d"])), "docker-compose up failed");
            let client = format!("{project}_client_1");
            let ready = wait_until(Duration::from_secs(60), || health(&client) == "healthy");
            peer.push(t.elapsed());
            assert!(ready, "compose's client never became healthy");
            run(&mut compose(&["down", "-v"]));
        }
        rows.push((
            "docker-compose up -d, until both healthy (median / p99)".to_owned(),
            format!("{:.0} / {:.0} ms", peer.median(), peer.p99()),
            String::new(),
        ));
    }
    mixed(&opts, image, &mut rows);
    println!(
        "\nbench-containers (release devenv binaries, {} cores, {} runs each)",
        devenv_e2e::bench::cores(),
        opts.runs
    );
    for (metric, value, _) in &rows {
        println!("{metric:<62} {value:>8}");
    }
}
