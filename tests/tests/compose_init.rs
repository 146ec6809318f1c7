//! `devenv init` converts a compose file of several services, and the converted config
//! comes up on the real Docker engine: a database gated by its healthcheck, a one-shot
//! migration that other services wait to complete, an API that devenv builds from its
//! Dockerfile, with its port from `.env`; everything ready, and `down` leaves no container behind.

use std::process::Command;

use devenv_e2e::docker::{busybox_image, containers_of, networks_of, EngineCleanup};
use devenv_e2e::{find_grpcurl, free_ports, http_get, service_states, RunOpts, TestEnv};

fn compose(name: &str, image: &str) -> String {
    format!(
        r#"name: {name}
x-probe: &probe
  interval: 1s
  retries: 30
services:
  db:
    image: {image}
    command: sh -c "mkdir -p /data/www && echo db-data > /data/www/index.html && exec httpd -f -p 5432 -h /data/www"
    volumes:
      - db-data:/data
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:5432/"]
      <<: *probe
      start_period: 5s
    restart: unless-stopped
  migrate:
    image: {image}
    command: ["sh", "-c", "wget -q -O- http://db:5432/ && echo migration-done"]
    depends_on:
      db:
        condition: service_healthy
  api:
    build:
      context: ./api
    environment:
      - GREETING=${{GREETING:-hello}}
    command: sh -c 'echo "$$GREETING from api" > /www/index.html && exec httpd -f -p 8080 -h /www'
    ports:
      - "127.0.0.1:${{API_PORT}}:8080"
    depends_on:
      db:
        condition: service_healthy
      migrate:
        condition: service_completed_successfully
    healthcheck:
      test: wget -q -O- http://127.0.0.1:8080/ | grep -q api
      interval: 1s
    privileged: true
    networks: [backend]
  debug-shell:
    image: {image}
    command: sleep 100000
    profiles: [debug]
volumes:
  db-data:
networks:
  backend:
"#
    )
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

#[test]
#[ignore = "needs a Docker engine: CI runs the ignored set as root, dockerd started by scripts/install-test-tools.sh"]
fn a_converted_compose_file_comes_up_and_down_leaves_no_container() {
    let image = busybox_image();
    let name = format!("compose-{}", std::process::id());
    let _cleanup = EngineCleanup(name.clone());
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    std::fs::create_dir_all(env.project.join("api")).expect("mkdir");
    std::fs::write(
        env.project.join("api/Dockerfile"),
        format!("FROM {image}\nRUN mkdir -p /www\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"),
    )
    .expect("Dockerfile");
    std::fs::write(env.project.join("compose.yaml"), compose(&name, image)).expect("compose");
    // The published port comes from .env, as compose would read it.
    std::fs::write(env.project.join(".env"), format!("API_PORT={port}\n")).expect(".env");

    let init = env.devenv_ok(&["init"]);
    let text = init.combined();
    assert!(text.contains("converted"), "{init}");
    // What has no equivalent is reported with its line, never dropped silently.
    for want in [
        "compose.yaml:38: services.api.privileged",
        "compose.yaml:39: services.api.networks",
        "compose.yaml:47: networks.backend",
        "compose.yaml:2: x-probe",
    ] {
        assert!(text.contains(want), "the report lacks {want}:\n{init}");
    }
    let config = std::fs::read_to_string(env.project.join(".devenv/config.yml")).expect("config");
    assert!(
        config.contains("${API_PORT}:8080"),
        "the reference is kept:\n{config}"
    );
    assert!(
        config.contains("#   compose.yaml:38: services.api.privileged"),
        "{config}"
    );
    env.devenv_ok(&["validate"]);

    let up = env.devenv_ok(&["up"]);
    let status = env.status_json();
    let states = service_states(&status);
    assert_eq!(
        states.get("db").map(String::as_str),
        Some("ready"),
        "{status}\n{up}"
    );
    assert_eq!(
        states.get("migrate").map(String::as_str),
        Some("completed"),
        "{status}"
    );
    assert_eq!(
        states.get("api").map(String::as_str),
        Some("ready"),
        "{status}"
    );
    assert!(
        !states.contains_key("debug-shell") || states["debug-shell"] != "ready",
        "{status}"
    );
    let logs = env.devenv_ok(&["logs", "migrate"]);
    assert!(logs.stdout.contains("migration-done"), "{logs}");
    let page = http_get(port, "/").expect("the api answers on the published port");
    assert!(page.body.contains("hello from api"), "{}", page.body);
    // db and api run; the completed migration's container is gone.
    assert_eq!(containers_of(&name).len(), 2);

    env.devenv_ok(&["down", "--volumes"]);
    assert_eq!(containers_of(&name), Vec::<String>::new());
    assert_eq!(networks_of(&name), Vec::<String>::new());
    // The api's image was built by devenv from ./api (kept by down as the build cache).
    let images = docker(&[
        "images",
        "-q",
        "--filter",
        &format!("label=dev.devenv.environment={name}"),
    ]);
    assert!(!images.stdout.is_empty(), "no image built for {name}");
    let _ = docker(&[
        "image",
        "prune",
        "-a",
        "-f",
        "--filter",
        &format!("label=dev.devenv.environment={name}"),
    ]);
}

/// The API's Init (what grpcurl users and other clients call) converts the compose file
/// as `devenv init` does, and a malformed one is an InvalidArgument naming its line.
#[test]
fn the_init_rpc_converts_a_compose_file_too() {
    let grpcurl = find_grpcurl().unwrap_or_else(|reason| panic!("{reason}"));
    let env = TestEnv::new();
    env.devenv_ok(&["daemon", "start"]);
    std::fs::write(
        env.project.join("docker-compose.yml"),
        "services:\n  web_app:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n    privileged: true\n",
    )
    .expect("compose");
    let socket = env.socket.to_string_lossy().into_owned();
    let body = serde_json::json!({ "dir": env.project }).to_string();
    let call = |body: &str| {
        env.run(
            &grpcurl,
            &[
                "-plaintext",
                "-unix",
                "-d",
                body,
                &socket,
                "devenv.v1.EnvironmentService/Init",
            ],
            RunOpts::default(),
        )
    };
    let out = call(&body);
    assert_eq!(out.code, Some(0), "{out}");
    let reply: serde_json::Value = serde_json::from_str(&out.stdout).expect("json reply");
    assert_eq!(reply["detected"], "compose", "{out}");
    let yaml = reply["yaml"].as_str().expect("yaml");
    assert!(yaml.contains("- name: web-app"), "{yaml}");
    assert!(yaml.contains(r#"forward: ["8080:80"]"#), "{yaml}");
    assert!(
        yaml.contains("#   docker-compose.yml:5: services.web_app.privileged"),
        "{yaml}"
    );

    std::fs::write(
        env.project.join("docker-compose.yml"),
        "services:\n  web:\n    image: nginx\n    ports: 80\n",
    )
    .expect("compose");
    let out = call(&body);
    assert_ne!(out.code, Some(0), "{out}");
    assert!(
        out.combined().contains("InvalidArgument")
            && out.combined().contains("docker-compose.yml:4"),
        "{out}"
    );
    env.devenv_ok(&["daemon", "stop"]);
}

/// `devenv init --presets` on a compose file whose database and cache are the official
/// postgres and redis images: on a machine with Debian's postgresql and redis-server (this
/// one), they become the local presets, keeping the compose file's user, password,
/// database and published ports; `up` brings them up without any container engine, and a
/// client reaches each with the compose file's credentials on the compose file's port.
#[test]
fn init_presets_turns_postgres_and_redis_images_into_presets_that_come_up() {
    let env = TestEnv::new();
    let ports = free_ports(2);
    let (pg, redis) = (ports[0], ports[1]);
    std::fs::write(
        env.project.join("compose.yaml"),
        format!(
            r#"services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: shop
      POSTGRES_PASSWORD: ${{DB_PASSWORD}}
      POSTGRES_DB: orders
    ports: ["127.0.0.1:{pg}:5432"]
    volumes: [pgdata:/var/lib/postgresql/data]
  cache:
    image: redis:7-alpine
    ports: ["{redis}:6379"]
volumes:
  pgdata:
"#
        ),
    )
    .expect("compose");
    std::fs::write(env.project.join(".env"), "DB_PASSWORD=from-dotenv\n").expect(".env");

    let init = env.devenv_ok(&["init", "--presets"]);
    let text = init.combined();
    assert!(
        text.contains("services.db: became the `postgresql` preset (local binaries on PATH)"),
        "{init}"
    );
    assert!(
        text.contains("services.cache: became the `redis` preset (local binaries on PATH)"),
        "{init}"
    );
    // The volume is replaced by the preset's data dir, and said so; the published ports
    // are where the servers listen, so nothing is said about them.
    assert!(text.contains("not kept: volumes"), "{init}");
    assert!(!text.contains("ports (the preset"), "{init}");
    let config = std::fs::read_to_string(env.project.join(".devenv/config.yml")).expect("config");
    assert!(config.contains("type: postgresql"), "{config}");
    assert!(config.contains(&format!("ports: [{pg}]")), "{config}");
    assert!(config.contains(&format!("ports: [{redis}]")), "{config}");
    // The password stays a reference to .env; its value is not written into the config.
    assert!(config.contains("${DB_PASSWORD}"), "{config}");
    assert!(!config.contains("from-dotenv"), "{config}");

    let up = env.devenv_ok(&["up"]);
    let status = env.status_json();
    let states = service_states(&status);
    for svc in ["db", "cache"] {
        assert_eq!(
            states.get(svc).map(String::as_str),
            Some("ready"),
            "{svc}: {status}\n{up}"
        );
    }
    // The compose file's user, password and database, on the compose file's port.
    let psql = Command::new("psql")
        .args(["-tA", "-h", "127.0.0.1", "-p", &pg.to_string()])
        .args([
            "-U",
            "shop",
            "-d",
            "orders",
            "-c",
            "SELECT current_user || '@' || current_database()",
        ])
        .env("PGPASSWORD", "from-dotenv")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap_or_else(|e| panic!("psql (postgresql-client) is needed by this test: {e}"));
    assert!(
        psql.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&psql.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&psql.stdout).trim(), "shop@orders");
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", redis))
        .expect("redis answers on the compose file's port");
    std::io::Write::write_all(&mut conn, b"*1\r\n$4\r\nPING\r\n").expect("PING");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut reply = [0u8; 7];
    std::io::Read::read_exact(&mut conn, &mut reply).expect("PONG");
    assert_eq!(&reply, b"+PONG\r\n");

    env.devenv_ok(&["down", "--volumes"]);
}
