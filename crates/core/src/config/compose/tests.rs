//! The conversion on realistic compose files: every written config must load (as
//! `devenv validate` loads it), and whatever was not converted must be in the report.

use std::collections::BTreeMap;
use std::path::Path;

use super::{convert, Conversion, Options};
use crate::config::{load, Command, LoadRequest, Probe, RestartPolicy, RuntimeKind, Service};

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A web + api + postgres + redis app, with a migration task and a debug-only admin UI,
/// written the way such files are found in the wild: both port syntaxes, both
/// environment syntaxes, conditions, anchors and keys devenv has no equivalent for.
const APP: &str = r#"
name: Shop_App
x-common-env: &common
  LOG_LEVEL: ${LOG_LEVEL:-info}
services:
  web:
    build: ./web
    ports:
      - "${WEB_PORT:-3000}:3000"
    environment:
      - API_URL=http://api:8000
      - NODE_ENV
    depends_on:
      - api
    restart: unless-stopped
  api:
    build:
      context: ./api
      dockerfile: Dockerfile.dev
      args:
        PYTHON_VERSION: "3.12"
      target: dev
    command: uvicorn app:main --host 0.0.0.0 --port 8000
    environment:
      <<: *common
      DATABASE_URL: postgres://app:${POSTGRES_PASSWORD}@db:5432/app
      REDIS_URL: redis://cache:6379
      DEBUG: true
    env_file: ./api/.env.dev
    ports:
      - target: 8000
        published: 8000
        host_ip: 127.0.0.1
      - "9229"
    depends_on:
      db:
        condition: service_healthy
        restart: true
      cache:
        condition: service_started
      migrate:
        condition: service_completed_successfully
    healthcheck:
      test: curl -fsS http://localhost:8000/health || exit 1
      interval: 5s
      retries: 10
      start_period: 1m
      timeout: 3s
    volumes:
      - ./api:/app:ro
      - /app/.venv
    tmpfs: /tmp:size=64m
    networks: [backend, default]
    cap_add: [NET_ADMIN]
    deploy:
      resources:
        limits: { memory: 512m }
  migrate:
    image: shop/api:dev
    command: ["alembic", "upgrade", "head"]
    depends_on:
      db: { condition: service_healthy }
  db:
    image: postgres:${PG_TAG:-16}
    container_name: shop-db
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}
      POSTGRES_DB: app
      PGDATA: /var/lib/postgresql/data/pgdata
    ports:
      - "0.0.0.0:5433:5432"
    volumes:
      - db-data:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD", "pg_isready", "-U", "app"]
      interval: 2s
      timeout: 5s
      retries: 30
    restart: always
  cache:
    image: redis:7-alpine
    command: redis-server --appendonly yes
    volumes:
      - type: volume
        source: cache-data
        target: /data
    healthcheck:
      test: ["CMD-SHELL", "redis-cli ping | grep PONG"]
    privileged: true
  adminer:
    image: adminer:4
    ports: ["8081:8080/tcp", "53:53/udp"]
    profiles: [debug]
    depends_on: [db]
volumes:
  db-data:
  cache-data:
    driver: local
networks:
  backend:
secrets:
  token:
    file: ./token.txt
"#;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "compose.yaml", APP);
    write(dir.path(), "api/.env.dev", "API_SECRET=dev\n");
    write(dir.path(), "web/Dockerfile", "FROM node:20\n");
    write(dir.path(), ".env", "POSTGRES_PASSWORD=from-dotenv\n");
    dir
}

fn converted(dir: &Path, opts: &Options) -> Conversion {
    let vars = BTreeMap::from([("NODE_ENV".to_owned(), "development".to_owned())]);
    match convert(&dir.join("compose.yaml"), dir, &vars, opts) {
        Ok(c) => c,
        Err(e) => panic!("conversion failed: {e}"),
    }
}

/// Writes the converted config and loads it as `devenv validate` would.
fn loads(dir: &Path, conv: &Conversion) -> Vec<Service> {
    write(dir, ".devenv/config.yml", &conv.yaml);
    let req = LoadRequest {
        start_dir: dir.to_path_buf(),
        vars: BTreeMap::from([("NODE_ENV".to_owned(), "development".to_owned())]),
        ..LoadRequest::default()
    };
    match load(&req) {
        Ok(l) => l.environment.services,
        Err(e) => panic!(
            "the converted config does not load:\n{e}\n---\n{}",
            conv.yaml
        ),
    }
}

fn svc<'a>(services: &'a [Service], name: &str) -> &'a Service {
    services
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

fn reported(conv: &Conversion, key: &str) -> String {
    conv.report
        .iter()
        .find(|n| n.key == key)
        .map(ToString::to_string)
        .unwrap_or_else(|| panic!("`{key}` is not in the report: {:#?}", conv.report))
}

#[test]
fn converts_a_web_api_postgres_redis_app() {
    let dir = project();
    let conv = converted(dir.path(), &Options::default());
    let services = loads(dir.path(), &conv);
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web", "api", "migrate", "db", "cache", "adminer"]);
    assert!(services.iter().all(|s| s.runtime == RuntimeKind::Container));
    assert!(conv.yaml.contains("name: shop-app"), "{}", conv.yaml);

    // Short port syntax with a variable: the reference is kept, resolved at load.
    let web = svc(&services, "web");
    assert_eq!(web.ports, [3000]);
    assert_eq!(web.forward, [(3000, 3000)]);
    assert!(conv.yaml.contains(r#"forward: ["${WEB_PORT:-3000}:3000"]"#));
    assert_eq!(web.dependencies, ["api"]);
    assert_eq!(web.restart, RestartPolicy::Always);
    assert_eq!(web.env["API_URL"], "http://api:8000");
    assert_eq!(web.env["NODE_ENV"], "development");
    // Built by devenv on the engine, from the context compose names.
    let build = web.build.as_ref().expect("web is built");
    assert!(build.context.ends_with("web"), "{:?}", build.context);
    assert_eq!(build.dockerfile, None);

    let api = svc(&services, "api");
    let build = api.build.as_ref().expect("api is built");
    assert!(build.context.ends_with("api"));
    assert!(build
        .dockerfile
        .as_ref()
        .is_some_and(|d| d.ends_with("api/Dockerfile.dev")));
    assert_eq!(build.args["PYTHON_VERSION"], "3.12");
    assert_eq!(build.target.as_deref(), Some("dev"));
    assert_eq!(
        api.command,
        Some(Command::Exec(
            ["uvicorn", "app:main", "--host", "0.0.0.0", "--port", "8000"]
                .map(String::from)
                .to_vec()
        ))
    );
    // The merge key, a kept reference with its default, a .env value, a boolean.
    assert_eq!(api.env["LOG_LEVEL"], "info");
    assert_eq!(
        api.env["DATABASE_URL"],
        "postgres://app:from-dotenv@db:5432/app"
    );
    assert!(
        conv.yaml.contains("${POSTGRES_PASSWORD}@db"),
        "{}",
        conv.yaml
    );
    assert_eq!(api.env["DEBUG"], "true");
    assert_eq!(api.env["API_SECRET"], "dev", "env_file");
    assert_eq!(api.ports, [8000, 9229]);
    assert_eq!(api.forward, [(8000, 8000)]);
    assert_eq!(api.dependencies, ["db", "cache", "migrate"]);
    assert_eq!(api.restart_with, ["db"]);
    let r = api.readiness.as_ref().expect("healthcheck -> readiness");
    assert_eq!(
        r.probe,
        Probe::Exec {
            command: Command::Shell("curl -fsS http://localhost:8000/health || exit 1".into())
        }
    );
    assert_eq!(r.period.as_secs(), 5);
    assert_eq!(r.failure_threshold, 10);
    // start_period 60 s + 10 retries of 5 s.
    assert_eq!(r.timeout.as_secs(), 110);
    assert!(reported(&conv, "services.api.healthcheck.timeout").contains("3s"));
    assert_eq!(api.binds.len(), 1);
    assert!(api.binds[0].read_only && api.binds[0].path == "/app");
    let mounts: Vec<(&str, &str)> = api
        .volumes
        .iter()
        .map(|v| (v.name.as_str(), v.path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [("api-data-1", "/app/.venv"), ("api-tmpfs-1", "/tmp")]
    );
    assert!(conv.yaml.contains("type: ephemeral"));
    assert!(conv.yaml.contains(r#"size: "64Mi""#), "{}", conv.yaml);

    // service_completed_successfully: the dependency is a one-shot task.
    let migrate = svc(&services, "migrate");
    assert!(migrate.oneshot);
    assert_eq!(migrate.dependencies, ["db"]);

    let db = svc(&services, "db");
    assert_eq!(db.image.as_deref(), Some("postgres:16"));
    assert!(conv.yaml.contains("postgres:${PG_TAG:-16}"));
    assert_eq!(db.forward, [(5433, 5432)]);
    assert_eq!(db.volumes[0].name, "db-data");
    assert_eq!(
        db.readiness.as_ref().map(|r| &r.probe),
        Some(&Probe::Exec {
            command: Command::Exec(["pg_isready", "-U", "app"].map(String::from).to_vec())
        })
    );
    assert!(reported(&conv, "services.db.ports").contains("not on `0.0.0.0`"));

    let cache = svc(&services, "cache");
    assert_eq!(cache.volumes[0].name, "cache-data");
    assert_eq!(
        cache.readiness.as_ref().map(|r| &r.probe),
        Some(&Probe::Exec {
            command: Command::Shell("redis-cli ping | grep PONG".into())
        })
    );

    let adminer = svc(&services, "adminer");
    assert_eq!(adminer.profiles, ["debug"]);
    assert_eq!(adminer.forward, [(8081, 8080)]);
    assert!(reported(&conv, "services.adminer.ports").contains("udp"));

    // Everything without an equivalent is reported, with its line, and written as a
    // comment.
    for key in [
        "x-common-env",
        "services.api.networks",
        "services.api.cap_add",
        "services.api.deploy",
        "services.db.container_name",
        "services.cache.privileged",
        "volumes.cache-data",
        "networks.backend",
        "secrets",
    ] {
        let line = reported(&conv, key);
        assert!(line.starts_with("compose.yaml:"), "{line}");
        assert!(
            conv.yaml.contains(&format!("#   {line}")),
            "not a comment: {line}"
        );
    }
    let privileged = reported(&conv, "services.cache.privileged");
    assert!(privileged.starts_with("compose.yaml:90:"), "{privileged}");
    assert_eq!(conv.preset_candidates, ["db", "cache"]);
    // Values are never in the report (the password came from .env).
    assert!(!conv
        .report
        .iter()
        .any(|n| n.to_string().contains("from-dotenv")));
}

#[test]
fn postgres_and_redis_become_presets_when_asked() {
    let dir = project();
    let local = Options {
        presets: true,
        local_servers: vec![
            crate::config::Preset::Postgresql,
            crate::config::Preset::Redis,
        ],
    };
    let conv = converted(dir.path(), &local);
    let services = loads(dir.path(), &conv);
    let db = svc(&services, "db");
    assert_eq!(db.preset, Some(crate::config::Preset::Postgresql));
    assert_eq!(db.runtime, RuntimeKind::Local);
    assert_eq!(db.env["POSTGRES_PASSWORD"], "from-dotenv");
    assert!(!db.env.contains_key("PGDATA"));
    // The server listens on the port the compose file published (5433:5432), so a
    // client on the host keeps its address; nothing is said about the ports then.
    assert_eq!(db.ports, [5433]);
    assert!(db.forward.is_empty());
    let line = reported(&conv, "services.db");
    assert!(
        line.contains("PGDATA") && line.contains("volumes"),
        "{line}"
    );
    let cache = svc(&services, "cache");
    assert_eq!(cache.preset, Some(crate::config::Preset::Redis));
    assert!(reported(&conv, "services.cache").contains("command"));
    // The others are still containers.
    assert_eq!(svc(&services, "adminer").runtime, RuntimeKind::Container);
}

#[test]
fn presets_without_a_local_server_run_their_image_in_a_container() {
    let dir = project();
    let only_redis = Options {
        presets: true,
        local_servers: vec![crate::config::Preset::Redis],
    };
    let conv = converted(dir.path(), &only_redis);
    let services = loads(dir.path(), &conv);
    let db = svc(&services, "db");
    assert_eq!(db.preset, Some(crate::config::Preset::Postgresql));
    assert_eq!(db.runtime, RuntimeKind::Container);
    // The compose file's image, environment, forward and volume are kept.
    assert!(
        db.image
            .as_deref()
            .is_some_and(|i| i.starts_with("postgres:")),
        "{:?}",
        db.image
    );
    assert_eq!(db.env["POSTGRES_PASSWORD"], "from-dotenv");
    assert_eq!(db.env["PGDATA"], "/var/lib/postgresql/data/pgdata");
    assert_eq!(db.forward, vec![(5433, 5432)]);
    assert_eq!(db.volumes.len(), 1);
    // The preset's probe, not the healthcheck.
    assert!(matches!(
        db.readiness.as_ref().map(|r| &r.probe),
        Some(crate::config::Probe::Postgres { .. })
    ));
    let line = reported(&conv, "services.db");
    assert!(
        line.contains("`runtime: container`")
            && line.contains("no local postgres/initdb")
            && line.contains("healthcheck"),
        "{line}"
    );
    assert!(
        conv.yaml
            .contains("type: postgresql\n      runtime: container\n"),
        "{}",
        conv.yaml
    );
    // redis has its server here: a local process.
    assert_eq!(svc(&services, "cache").runtime, RuntimeKind::Local);
    // A UDP port is listed, not dropped silently.
    assert!(reported(&conv, "services.adminer.ports").contains("`udp` ports are not published"));
}

#[test]
fn unset_variables_become_empty_defaults_and_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "docker-compose.yml",
        "services:\n  app:\n    image: busybox\n    command: sh -c 'echo $$HOME; sleep 1000'\n    environment:\n      TOKEN: $API_TOKEN\n",
    );
    let conv = convert(
        &dir.path().join("docker-compose.yml"),
        dir.path(),
        &BTreeMap::new(),
        &Options::default(),
    )
    .expect("converts");
    let services = loads(dir.path(), &conv);
    let app = svc(&services, "app");
    assert_eq!(app.env["TOKEN"], "");
    assert_eq!(
        app.command,
        Some(Command::Exec(
            ["sh", "-c", "echo $HOME; sleep 1000"]
                .map(String::from)
                .to_vec()
        ))
    );
    assert!(reported(&conv, "${API_TOKEN}").contains("${API_TOKEN:-}"));
}

fn error_of(text: &str) -> crate::config::ConfigError {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "compose.yaml", text);
    match convert(
        &dir.path().join("compose.yaml"),
        dir.path(),
        &BTreeMap::new(),
        &Options::default(),
    ) {
        Ok(c) => panic!("expected an error, got:\n{}", c.yaml),
        Err(e) => e,
    }
}

#[test]
fn malformed_files_are_located_errors() {
    let e = error_of("services:\n  web:\n    image: nginx\n    ports: 80\n");
    assert_eq!((e.line, e.key.as_str()), (4, "services.web.ports"));
    assert!(e.message.contains("expected a list of ports"), "{e}");
    assert_eq!(e.file, Path::new("compose.yaml"));

    let e = error_of("services:\n  web:\n    image: nginx\n    ports: [\"80:http\"]\n");
    assert_eq!(e.line, 4);
    assert!(e.message.contains("`http` is not a port"), "{e}");

    let e = error_of("services:\n  web:\n    image: nginx\n   bad: [\n");
    assert!(e.message.contains("invalid YAML"), "{e}");
    assert!(e.line >= 4, "{e}");

    let e = error_of("services:\n  web:\n    image: nginx\n    healthcheck:\n      test: [CMD]\n      interval: soon\n");
    assert!(
        e.key.ends_with("healthcheck.test") || e.key.ends_with("interval"),
        "{e}"
    );

    let e = error_of("services:\n  web:\n    image: \"${TAG\"\n");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("unterminated"), "{e}");

    let e = error_of("volumes: {}\n");
    assert!(e.message.contains("no `services`"), "{e}");

    let e = error_of("services:\n  web:\n    image: nginx\n    restart: sometimes\n");
    assert!(e.message.contains("unknown restart policy"), "{e}");

    let e = error_of(&format!("# {}\nservices: {{}}\n", "x".repeat(2 << 20)));
    assert!(e.message.contains("larger than"), "{e}");
}

#[test]
fn durations_and_words() {
    use super::{duration_seconds, split_words};
    assert_eq!(duration_seconds("1m30s"), Some(90.0));
    assert_eq!(duration_seconds("500ms"), Some(0.5));
    assert_eq!(duration_seconds("2h"), Some(7200.0));
    assert_eq!(duration_seconds("10"), None);
    assert_eq!(
        split_words(r#"sh -c "echo \"hi\" && exit 0" 'a b'"#).unwrap(),
        ["sh", "-c", r#"echo "hi" && exit 0"#, "a b"]
    );
    assert!(split_words("echo 'open").is_err());
}
