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
