//! `load()` end to end over real files in temp dirs: layering, origins, and the located
//! errors a person sees from `devenv validate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::*;

const HEAD: &str = "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\n";

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dir");
    }
    std::fs::write(&path, text).expect("write file");
    path
}

fn project(config: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), ".devenv/config.yml", config);
    (dir, file)
}

fn req(dir: &Path) -> LoadRequest {
    LoadRequest {
        start_dir: dir.to_path_buf(),
        ..LoadRequest::default()
    }
}

fn ok(req: &LoadRequest) -> Loaded {
    match load(req) {
        Ok(loaded) => loaded,
        Err(e) => panic!("expected the config to load, got:\n{e}"),
    }
}

fn errs(req: &LoadRequest) -> Vec<ConfigError> {
    match load(req) {
        Ok(loaded) => panic!("expected errors, loaded {:?}", loaded.environment),
        Err(ConfigErrors(errors)) => {
            assert!(!errors.is_empty());
            errors
        }
    }
}

fn one(req: &LoadRequest) -> ConfigError {
    let errors = errs(req);
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        ConfigErrors(errors.clone())
    );
    errors.into_iter().next().expect("one error")
}

fn value<'a>(loaded: &'a Loaded, path: &str) -> (&'a str, &'a Origin) {
    loaded
        .values
        .iter()
        .find(|(p, _, _)| p == path)
        .map(|(_, v, o)| (v.as_str(), o))
        .unwrap_or_else(|| panic!("no value at {path}: {:?}", loaded.values))
}

fn at(file: &Path, line: u32, column: u32) -> Origin {
    Origin::File {
        file: file.to_path_buf(),
        line,
        column,
    }
}

fn assert_at(e: &ConfigError, file: &Path, line: u32, column: u32) {
    assert_eq!(
        (e.file.as_path(), e.line, e.column),
        (file, line, column),
        "{e}"
    );
}

#[test]
fn seed_example_loads_into_the_model() {
    let config = format!(
        "{HEAD}spec:
  cluster:
    provider: k3d
    name: shop-local
    k3d: {{ agents: 1, ports: [\"8080:80@loadbalancer\"] }}
  services:
    - name: cache
      type: redis
    - name: api
      command: python3 -m http.server ${{API_PORT:-8000}}
      workdir: ./api
      env: {{ REDIS_URL: \"redis://localhost:6379\", WORKERS: 4, DEBUG: true }}
      ports: [8000]
      dependencies: [cache]
      readiness: {{ http: {{ path: /, port: 8000 }}, periodSeconds: 0.1, timeoutSeconds: 60 }}
      restart: on-failure
      watch: {{ paths: [./api], ignore: [\"*.pyc\"], action: restart }}
    - name: web
      image: nginx:1.27
      build: {{ context: ./web }}
      command: [nginx, -g, daemon off;]
      ports: [80]
      forward: [\"8080:80\"]
      dependencies: [api]
      readiness: {{ path: /, initialDelaySeconds: 2 }}
      dev:
        command: [\"nginx\", \"-g\", \"daemon off;\"]
        sync: [{{ from: ./web/dist, to: /usr/share/nginx/html, exclude: [\"*.map\"] }}]
        onSync: {{ exec: \"nginx -s reload\" }}
    - name: platform
      manifests: ./k8s/base
    - name: monitoring
      chart: ./charts/monitoring
      values: {{ grafana: {{ enabled: true }} }}
  volumes:  [{{ name: db-data, type: persistent, size: 1Gi }}]
  secrets:  [{{ name: db-credentials, data: {{ password: \"hunter22\" }} }}]
  hooks:    {{ preUp: [\"./scripts/migrate.sh\"], postDown: [] }}
"
    );
    let (dir, file) = project(&config);
    // Paths the config names must exist (validate checks them).
    for d in ["api", "web/dist"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
    }
    let loaded = ok(&req(dir.path()));
    let env = &loaded.environment;
    assert_eq!(loaded.config_file, file);
    assert_eq!(env.name, "shop");
    assert_eq!(env.project_dir, dir.path());
    let cluster = env.cluster.as_ref().expect("cluster");
    assert_eq!(cluster.provider, ClusterProvider::K3d);
    assert_eq!(cluster.namespace, "devenv-shop");
    assert_eq!(cluster.name.as_deref(), Some("shop-local"));

    let cache = env.service("cache").expect("cache");
    assert_eq!(
        (cache.runtime, cache.preset),
        (RuntimeKind::Kubernetes, Some(Preset::Redis))
    );

    let api = env.service("api").expect("api");
    assert_eq!(api.runtime, RuntimeKind::Local);
    assert_eq!(
        api.command,
        Some(Command::Shell("python3 -m http.server 8000".into()))
    );
    assert_eq!(api.workdir, dir.path().join("api"));
    assert_eq!(api.env["WORKERS"], "4");
    assert_eq!(api.env["DEBUG"], "true");
    assert_eq!(api.restart, RestartPolicy::OnFailure);
    let readiness = api.readiness.as_ref().expect("readiness");
    assert_eq!(
        readiness.probe,
        Probe::Http {
            host: "127.0.0.1".into(),
            port: 8000,
            path: "/".into()
        }
    );
    assert_eq!(readiness.period, Duration::from_millis(100));
    assert_eq!(readiness.timeout, Duration::from_secs(60));
    assert_eq!(readiness.failure_threshold, 3);
    let watch = api.watch.as_ref().expect("watch");
    assert_eq!(watch.paths, vec![dir.path().join("api")]);
    assert_eq!(watch.action, WatchAction::Restart);

    let web = env.service("web").expect("web");
    assert_eq!(web.runtime, RuntimeKind::Kubernetes);
    assert_eq!(
        web.command,
        Some(Command::Exec(vec![
            "nginx".into(),
            "-g".into(),
            "daemon off;".into()
        ]))
    );
    assert_eq!(web.forward, vec![(8080, 80)]);
    let readiness = web.readiness.as_ref().expect("shorthand readiness");
    assert_eq!(
        readiness.probe,
        Probe::Http {
            host: "127.0.0.1".into(),
            port: 80,
            path: "/".into()
        }
    );
    assert_eq!(readiness.initial_delay, Duration::from_secs(2));

    assert_eq!(
        env.service("platform").and_then(|s| s.manifests.clone()),
        Some(dir.path().join("k8s/base"))
    );
    assert_eq!(
        env.service("monitoring").map(|s| s.runtime),
        Some(RuntimeKind::Kubernetes)
    );
    assert_eq!(env.secrets[0].data["password"], "hunter22");
    assert_eq!(
        env.hooks.pre_up,
        vec![Hook {
            run: HookRun::Host(Command::Shell("./scripts/migrate.sh".into())),
            timeout: DEFAULT_HOOK_TIMEOUT,
            on_error: OnError::Fail,
        }]
    );
}

#[test]
fn discovery_walks_up_and_reports_where_it_looked() {
    let (dir, file) = project(&format!("{HEAD}spec:\n  services: []\n"));
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).expect("mkdir");
    let loaded = ok(&req(&nested));
    assert_eq!(loaded.config_file, file);
    assert_eq!(loaded.environment.project_dir, dir.path());

    let empty = tempfile::tempdir().expect("tempdir");
    let e = one(&req(empty.path()));
    assert_eq!(e.file, empty.path());
    assert_eq!(
        e.message,
        format!(
            "no .devenv/config.yml found in {} or any parent",
            empty.path().display()
        )
    );
    assert_eq!(
        e.hint.as_deref(),
        Some("run `devenv init` to create one, or pass -f FILE")
    );
}

#[test]
fn explicit_file_sets_the_project_dir() {
    let (dir, file) = project(HEAD);
    let loaded = ok(&LoadRequest {
        config_file: Some(file.clone()),
        start_dir: PathBuf::from("/nonexistent"),
        ..LoadRequest::default()
    });
    assert_eq!(loaded.environment.project_dir, dir.path());

    let other = write(dir.path(), "elsewhere/devenv.yml", HEAD);
    let loaded = ok(&LoadRequest {
        config_file: Some(other),
        ..LoadRequest::default()
    });
    assert_eq!(loaded.environment.project_dir, dir.path().join("elsewhere"));
}

/// Each layer overrides the ones below it, and the origin says which one won.
#[test]
fn layers_apply_in_order_user_project_env_file_variables() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  cluster:\n    context: from-project\n"
    ));
    let user = write(dir.path(), "home/config.yml", "spec:\n  cluster:\n    namespace: from-user\n    context: from-user\n    name: user-cluster\n");
    let envfile = write(
        dir.path(),
        ".devenv/environments/staging.yml",
        "spec:\n  cluster:\n    context: from-env-file\n",
    );
    let base = LoadRequest {
        user_config: Some(user.clone()),
        ..req(dir.path())
    };

    // user < project
    let loaded = ok(&base);
    assert_eq!(
        value(&loaded, "spec.cluster.context"),
        ("from-project", &at(&file, 7, 14))
    );
    assert_eq!(
        value(&loaded, "spec.cluster.namespace"),
        ("from-user", &at(&user, 3, 16))
    );

    // project < environment file
    let with_env = LoadRequest {
        env_name: Some("staging".into()),
        ..base.clone()
    };
    let loaded = ok(&with_env);
    assert_eq!(
        value(&loaded, "spec.cluster.context"),
        ("from-env-file", &at(&envfile, 3, 14))
    );
    assert_eq!(
        loaded
            .environment
            .cluster
            .as_ref()
            .and_then(|c| c.name.as_deref()),
        Some("user-cluster")
    );

    // environment file < DEVENV_* variables (and variables without `__` are not config)
    let with_vars = LoadRequest {
        vars: BTreeMap::from([
            (
                "DEVENV_SPEC__CLUSTER__CONTEXT".to_owned(),
                "from-var".to_owned(),
            ),
            ("DEVENV_METADATA__NAME".to_owned(), "renamed".to_owned()),
            ("DEVENV_SOCKET".to_owned(), "/tmp/x.sock".to_owned()),
        ]),
        ..with_env
    };
    let loaded = ok(&with_vars);
    let var = Origin::EnvVar("DEVENV_SPEC__CLUSTER__CONTEXT".into());
    assert_eq!(value(&loaded, "spec.cluster.context"), ("from-var", &var));
    assert_eq!(loaded.environment.name, "renamed");
    assert_eq!(
        loaded.environment.cluster.map(|c| c.namespace),
        Some("from-user".to_owned())
    );
    assert!(!loaded.values.iter().any(|(p, _, _)| p.contains("socket")));
}

#[test]
fn variable_paths_are_camel_cased_and_typed_as_yaml() {
    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run\n      ports: [8000]\n      readiness: {{ tcp: {{}} }}\n"
    ));
    let loaded = ok(&LoadRequest {
        vars: BTreeMap::from([(
            "DEVENV_SPEC__SERVICES__API__READINESS__INITIAL_DELAY_SECONDS".to_owned(),
            "5".to_owned(),
        )]),
        ..req(dir.path())
    });
    let api = loaded.environment.service("api").expect("api");
    assert_eq!(
        api.readiness.as_ref().map(|r| r.initial_delay),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        value(&loaded, "spec.services[0].readiness.initialDelaySeconds").0,
        "5"
    );
}

#[test]
fn missing_environment_file_lists_the_available_ones() {
    let (dir, _) = project(HEAD);
    write(dir.path(), ".devenv/environments/dev.yml", "");
    write(dir.path(), ".devenv/environments/prod.yaml", "");
    let e = one(&LoadRequest {
        env_name: Some("staging".into()),
        ..req(dir.path())
    });
    let expected = dir.path().join(".devenv/environments/staging.yml");
    assert_eq!(e.file, expected);
    assert!(e.message.contains("environment `staging` not found"), "{e}");
    assert!(e.message.contains(&expected.display().to_string()), "{e}");
    assert_eq!(e.hint.as_deref(), Some("available environments: dev, prod"));
}

#[test]
fn environment_file_merges_services_by_name() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:
  services:
    - name: db
      type: postgresql
      env: {{ POSTGRES_PASSWORD: pw }}
    - name: api
      command: ./serve
      ports: [8000, 8001]
      env: {{ A: base, B: base }}
"
    ));
    let envfile = write(
        dir.path(),
        ".devenv/environments/ci.yml",
        "spec:
  services:
    - name: api
      restart: always
      ports: [9000]
      env: { B: ci }
    - name: worker
      command: ./work
",
    );
    let loaded = ok(&LoadRequest {
        env_name: Some("ci".into()),
        ..req(dir.path())
    });
    let names: Vec<&str> = loaded
        .environment
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["db", "api", "worker"]);
    let api = loaded.environment.service("api").expect("api");
    assert_eq!(api.command, Some(Command::Shell("./serve".into())));
    assert_eq!(api.restart, RestartPolicy::Always);
    assert_eq!(
        api.ports,
        vec![9000],
        "lists other than services are replaced"
    );
    assert_eq!(api.env["A"], "base");
    assert_eq!(api.env["B"], "ci");
    assert_eq!(
        value(&loaded, "spec.services[1].command"),
        ("./serve", &at(&file, 11, 16))
    );
    assert_eq!(
        value(&loaded, "spec.services[1].ports[0]"),
        ("9000", &at(&envfile, 5, 15))
    );
    assert_eq!(
        value(&loaded, "spec.services[2].name").1,
        &at(&envfile, 7, 13)
    );
}

#[test]
fn interpolation_uses_defaults_escapes_and_prefers_the_process_env() {
    let (dir, _) = project(&format!(
        "{HEAD}spec:
  services:
    - name: api
      command: echo $${{HOME}} ${{GREETING}} ${{MISSING:-fallback}}
      env: {{ FROM_DOTENV: \"${{ONLY_DOTENV}}\", BOTH: \"${{BOTH}}\" }}
      ports:
        - ${{API_PORT}}
      readiness: {{ tcp: {{ port: \"${{API_PORT}}\" }} }}
"
    ));
    write(
        dir.path(),
        ".env",
        "# local settings\nONLY_DOTENV=dotenv\nBOTH=dotenv\nAPI_PORT=\"7000\"\nGREETING='hi'\n",
    );
    let loaded = ok(&LoadRequest {
        vars: BTreeMap::from([("BOTH".to_owned(), "process".to_owned())]),
        ..req(dir.path())
    });
    let api = loaded.environment.service("api").expect("api");
    assert_eq!(
        api.command,
        Some(Command::Shell("echo ${HOME} hi fallback".into()))
    );
    assert_eq!(api.env["FROM_DOTENV"], "dotenv");
    assert_eq!(api.env["BOTH"], "process");
    assert_eq!(
        api.ports,
        vec![7000],
        "an unquoted interpolated value is typed again"
    );
    assert_eq!(
        api.readiness.as_ref().map(|r| &r.probe),
        Some(&Probe::Tcp {
            host: "127.0.0.1".into(),
            port: 7000
        }),
        "a quoted number is a number where one is expected"
    );
}

#[test]
fn undefined_variable_is_located_at_its_value() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: serve --db ${{DATABASE_URL}}\n"
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 8, 16);
    assert_eq!(e.key, "spec.services[0].command");
    assert_eq!(e.message, "variable `DATABASE_URL` is not set");
    assert!(
        e.hint
            .as_deref()
            .is_some_and(|h| h.contains("${DATABASE_URL:-default}")),
        "{e}"
    );
}

#[test]
fn unterminated_interpolation_is_an_error() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  cluster:\n    context: \"${{CTX\"\n"
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 7, 14);
    assert!(e.message.contains("unterminated `${`"), "{e}");
}

#[test]
fn yaml_syntax_error_is_located() {
    let (dir, file) = project(&format!("{HEAD}spec:\n  services: [\n    - name: x\n"));
    let e = one(&req(dir.path()));
    assert_eq!(e.file, file);
    assert!(e.line >= 7, "{e}");
    assert!(e.column >= 1, "{e}");
    assert!(e.message.starts_with("invalid YAML: "), "{e}");

    let (dir, file) = project("apiVersion: devenv/v1\nkind: Environment\n  metadata: x\n");
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 3, 11);
    assert!(e.message.contains("mapping values are not allowed"), "{e}");
}

#[test]
fn unknown_key_suggests_the_close_name() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run\n      dependecies: [db]\n"
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 9, 7);
    assert_eq!(e.key, "spec.services[0].dependecies");
    assert_eq!(e.message, "unknown key `dependecies`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `dependencies`?"));
    assert_eq!(
        e.to_string(),
        format!(
            "{}:9:7: spec.services[0].dependecies: unknown key `dependecies` (hint: did you mean `dependencies`?)",
            file.display()
        )
    );
}

#[test]
fn postgresql_preset_without_password_is_located_with_a_hint() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: db\n      type: postgresql\n      env: {{ POSTGRES_DB: shop }}\n"
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 8, 13);
    assert_eq!(e.key, "spec.services[0].type");
    assert!(e.message.contains("has no POSTGRES_PASSWORD"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .is_some_and(|h| h.contains("POSTGRES_HOST_AUTH_METHOD: trust")),
        "{e}"
    );
    // The image's escape hatch, and a password; both load, and presets restart on failure.
    for env in ["POSTGRES_HOST_AUTH_METHOD: trust", "POSTGRES_PASSWORD: pw"] {
        let (dir, _) = project(&format!(
            "{HEAD}spec:\n  services:\n    - name: db\n      type: postgresql\n      env: {{ {env} }}\n"
        ));
        let loaded = ok(&req(dir.path()));
        assert_eq!(
            loaded.environment.services[0].restart,
            RestartPolicy::OnFailure
        );
    }
}

#[test]
fn unknown_top_level_key_and_unknown_enum_value() {
    let (dir, file) = project(&format!("{HEAD}specs: {{}}\n"));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 5, 1);
    assert_eq!(e.hint.as_deref(), Some("did you mean `spec`?"));

    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run\n      restart: on_failure\n"
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 9, 16);
    assert!(
        e.message.starts_with(
            "unknown value `on_failure`, expected one of `never`, `on-failure`, `always`"
        ),
        "{e}"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `on-failure`?"));
}

#[test]
fn wrong_type_says_what_was_expected_and_found() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run\n      dependencies: db\n"
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 9, 21);
    assert_eq!(e.key, "spec.services[0].dependencies");
    assert_eq!(
        e.message,
        "expected a list of service names, or a mapping of service name to `{restart: true}`, found a string"
    );

    let (dir, file) = project(&format!("{HEAD}spec:\n  cluster: [k3d]\n"));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 6, 12);
    assert_eq!(e.message, "expected a mapping, found a list");
}

#[test]
fn errors_in_several_services_are_all_reported() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:
  services:
    - name: a
      command: run
      portz: [1]
    - name: b
      command: run
      ports: [70000]
    - name: c
"
    ));
    let errors = errs(&req(dir.path()));
    let summary: Vec<(u32, &str)> = errors
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (9, "unknown key `portz`"),
            (12, "port 70000 is out of range 1-65535"),
            (13, "service `c` has nothing to run"),
        ]
    );
    assert!(errors.iter().all(|e| e.file == file));
    assert_eq!(
        errors[2].hint.as_deref(),
        Some("add `command:` (local process) or `image:` (a container)")
    );
}

fn graph_config(services: &str) -> String {
    format!("{HEAD}spec:\n  services:\n{services}")
}

#[test]
fn dependency_cycle_prints_its_path() {
    let (dir, file) = project(&graph_config(
        "    - name: a
      command: run
      dependencies: [b]
    - name: b
      command: run
      dependencies: [c]
    - name: c
      command: run
      dependencies: [x-ok, a]
    - name: x-ok
      command: run
",
    ));
    let e = one(&req(dir.path()));
    assert_eq!(e.message, "dependency cycle: a -> b -> c -> a");
    assert_eq!(e.key, "spec.services[2].dependencies[1]");
    assert_at(&e, &file, 15, 28);
}

#[test]
fn dependencies_in_the_mapping_form_say_which_restart_their_dependent() {
    let (dir, _) = project(&graph_config(
        "    - name: db\n      command: run\n    - name: cache\n      command: run\n    - name: api\n      command: run\n      dependencies:\n        db: { restart: true }\n        cache:\n",
    ));
    let loaded = ok(&req(dir.path()));
    let api = loaded.environment.service("api").unwrap();
    assert_eq!(api.dependencies, ["db", "cache"]);
    assert_eq!(api.restart_with, ["db"]);

    // A wrong name is located at its key; an unknown option is refused.
    let (dir, file) = project(&graph_config(
        "    - name: db\n      command: run\n    - name: api\n      command: run\n      dependencies:\n        dv: { restart: true }\n",
    ));
    let e = one(&req(dir.path()));
    assert_eq!(e.key, "spec.services[1].dependencies.dv");
    assert_at(&e, &file, 12, 13);
    let (dir, _) = project(&graph_config(
        "    - name: db\n      command: run\n    - name: api\n      command: run\n      dependencies:\n        db: { condition: service_healthy }\n",
    ));
    let e = one(&req(dir.path()));
    assert!(e.message.contains("unknown key `condition`"), "{e}");
}

#[test]
fn unknown_dependency_suggests_a_service() {
    let (dir, file) = project(&graph_config(
        "    - name: cache\n      type: redis\n    - name: api\n      command: run\n      dependencies: [cahce]\n",
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 11, 22);
    assert_eq!(
        e.message,
        "service `api` depends on `cahce`, which is not a service in this environment"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `cache`?"));
}

#[test]
fn self_dependency_is_an_error() {
    let (dir, file) = project(&graph_config(
        "    - name: api\n      command: run\n      dependencies:\n        - api\n",
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 10, 11);
    assert_eq!(e.message, "service `api` depends on itself");
}

#[test]
fn duplicate_service_name_points_at_the_second_and_names_the_first() {
    let (dir, file) = project(&graph_config(
        "    - name: api\n      command: one\n    - name: api\n      command: two\n",
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 9, 13);
    assert!(e.message.starts_with("duplicate service name `api`"), "{e}");
    assert!(e.message.contains("spec.services[0]"), "{e}");
    assert!(
        e.message.contains(&format!("{}:7:13", file.display())),
        "{e}"
    );
    assert!(e.message.contains("spec.services[1]"), "{e}");
}

#[test]
fn bad_port_is_located_at_the_port() {
    let (dir, file) = project(&graph_config(
        "    - name: api\n      command: run\n      ports: [8000, 70000]\n",
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 9, 21);
    assert_eq!(e.key, "spec.services[0].ports[1]");
    assert_eq!(e.message, "port 70000 is out of range 1-65535");
}

#[test]
fn bad_regex_is_located_at_the_pattern() {
    let (dir, file) = project(&graph_config(
        "    - name: api\n      command: run\n      readiness:\n        log: { pattern: \"listening (on\" }\n",
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 10, 25);
    assert_eq!(e.key, "spec.services[0].readiness.log.pattern");
    assert!(e.message.starts_with("invalid regular expression: "), "{e}");
    assert!(e.message.contains("unclosed group"), "{e}");
}

#[test]
fn readiness_needs_exactly_one_probe_and_a_port() {
    let (dir, file) = project(&graph_config(
        "    - name: api\n      command: run\n      readiness: { path: /health }\n",
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 9, 18);
    assert_eq!(
        e.message,
        "the probe has no port and the service lists no `ports`"
    );

    let (dir, file) = project(&graph_config(
        "    - name: api\n      command: run\n      ports: [1]\n      readiness: { tcp: {}, log: { pattern: up } }\n",
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 10, 34);
    assert_eq!(
        e.message,
        "readiness has more than one probe (`tcp`, `log`); keep one"
    );
}

#[test]
fn missing_api_version_and_name_are_reported_together() {
    let (dir, file) = project("kind: Environment\nmetadata: {}\n");
    let errors = errs(&req(dir.path()));
    assert_eq!(errors.len(), 2, "{}", ConfigErrors(errors.clone()));
    assert_at(&errors[0], &file, 1, 1);
    assert_eq!(errors[0].message, "missing required key `apiVersion`");
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("add `apiVersion: devenv/v1` at the top of the file")
    );
    assert_at(&errors[1], &file, 2, 11);
    assert_eq!(errors[1].message, "missing required key `metadata.name`");

    let (dir, file) =
        project("apiVersion: devenv/v2\nkind: Environment\nmetadata: { name: My_Shop }\n");
    let errors = errs(&req(dir.path()));
    assert_at(&errors[0], &file, 1, 13);
    assert!(errors[0]
        .message
        .contains("unsupported apiVersion `devenv/v2`"));
    assert_at(&errors[1], &file, 3, 19);
    assert!(errors[1]
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("`my-shop`")));
}

#[test]
fn conflicting_sources_are_an_error() {
    let (dir, file) = project(&graph_config(
        "    - name: k\n      chart: ./chart\n      manifests: ./k8s\n",
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 9, 18);
    assert!(
        e.message.contains("sets both `chart` and `manifests`"),
        "{e}"
    );
}

#[test]
fn secrets_never_appear_in_output_or_errors() {
    let (dir, _) = project(&format!(
        "{HEAD}spec:
  secrets:
    - name: db
      data: {{ password: \"${{DB_PASSWORD}}\", token: s3cr3t-token }}
  services:
    - name: api
      command: run
      env: {{ DATABASE_URL: \"postgres://app:${{DB_PASSWORD}}@db/app\" }}
"
    ));
    let vars = BTreeMap::from([("DB_PASSWORD".to_owned(), "correct-horse".to_owned())]);
    let loaded = ok(&LoadRequest {
        vars: vars.clone(),
        ..req(dir.path())
    });
    assert_eq!(
        loaded.environment.secrets[0].data["password"],
        "correct-horse"
    );
    for needle in ["correct-horse", "s3cr3t-token"] {
        assert!(
            !loaded.merged_yaml.contains(needle),
            "{}",
            loaded.merged_yaml
        );
        assert!(
            !loaded.values.iter().any(|(_, v, _)| v.contains(needle)),
            "{:?}",
            loaded.values
        );
    }
    assert_eq!(
        value(&loaded, "spec.secrets[0].data.password").0,
        "<redacted>"
    );
    assert_eq!(
        value(&loaded, "spec.services[0].env.DATABASE_URL").0,
        "postgres://app:<redacted>@db/app"
    );

    // An error inside a secret, and an error elsewhere that would quote it, stay silent.
    let (dir, _) = project(&format!(
        "{HEAD}spec:
  secrets:
    - name: db
      data: {{ password: [correct-horse] }}
"
    ));
    let text = ConfigErrors(errs(&req(dir.path()))).to_string();
    assert!(
        text.contains("expected a string, number or boolean, found a list"),
        "{text}"
    );
    assert!(!text.contains("correct-horse"), "{text}");

    let (dir, _) = project(&format!(
        "{HEAD}spec:
  secrets: [{{ name: db, data: {{ password: \"${{DB_PASSWORD}}\" }} }}]
  services:
    - name: api
      command: run
      forward: [\"${{DB_PASSWORD}}\"]
"
    ));
    let text = ConfigErrors(errs(&LoadRequest {
        vars,
        ..req(dir.path())
    }))
    .to_string();
    assert!(text.contains("forward rule `<redacted>`"), "{text}");
    assert!(!text.contains("correct-horse"), "{text}");
}

#[test]
fn init_finds_projects_in_subdirectories() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "frontend/package.json",
        r#"{"scripts": {"dev": "vite"}}"#,
    );
    write(dir.path(), "backend/requirements.txt", "");
    write(dir.path(), "node_modules/x/package.json", "{}");
    write(dir.path(), "docs/README.md", "");
    let (yaml, detected) = init_template(dir.path());
    assert_eq!(detected, "multi-service");
    write(dir.path(), ".devenv/config.yml", &yaml);
    let loaded = ok(&req(dir.path()));
    let services: Vec<(&str, &Path)> = loaded
        .environment
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.workdir.as_path()))
        .collect();
    let root = dir
        .path()
        .canonicalize()
        .unwrap_or(dir.path().to_path_buf());
    let (b, f) = (root.join("backend"), root.join("frontend"));
    assert_eq!(
        services,
        [("backend", b.as_path()), ("frontend", f.as_path())],
        "{yaml}"
    );
    assert_eq!(
        loaded.environment.services[1].command,
        Some(Command::Shell("npm run dev".into()))
    );
}

#[test]
fn init_templates_load() {
    let cases: [(&[(&str, &str)], &str); 7] = [
        (
            &[("package.json", r#"{"scripts": {"dev": "vite"}}"#)],
            "node",
        ),
        (&[("package.json", "{}")], "node"),
        (&[("Cargo.toml", "[package]\nname = \"x\"\n")], "rust"),
        (&[("go.mod", "module x\n")], "go"),
        (&[("manage.py", "")], "python"),
        (&[("requirements.txt", "")], "python"),
        (&[], "generic"),
    ];
    for (files, kind) in cases {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("My Project_2");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (name, text) in files {
            write(&dir, name, text);
        }
        let (yaml, detected) = init_template(&dir);
        assert_eq!(detected, kind);
        write(&dir, ".devenv/config.yml", &yaml);
        let loaded = ok(&req(&dir));
        assert_eq!(loaded.environment.name, "my-project-2");
        assert_eq!(loaded.environment.services.len(), 1, "{yaml}");
        let command = loaded.environment.services[0].command.clone();
        match (files.first().map(|f| f.1), kind) {
            (Some(r#"{"scripts": {"dev": "vite"}}"#), _) => {
                assert_eq!(command, Some(Command::Shell("npm run dev".into())))
            }
            (Some("{}"), _) => assert_eq!(command, Some(Command::Shell("npm start".into()))),
            (_, "generic") => assert_eq!(
                command,
                Some(Command::Shell("python3 -m http.server 8000".into()))
            ),
            _ => assert!(command.is_some()),
        }
    }
}

#[test]
fn env_files_merge_in_order_and_env_wins() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run\n      envFile: [./a.env, conf/b.env]\n      env: {{ C: from-env }}\n    - name: one\n      command: run\n      envFile: ./a.env\n"
    ));
    write(dir.path(), "a.env", "A=a1\nB=a2\nC=a3\n");
    write(
        dir.path(),
        "conf/b.env",
        "B=b2\nC=b3\nD=${HOME_DIR:-/h}/x\n",
    );
    let loaded = ok(&req(dir.path()));
    let api = loaded.environment.service("api").expect("api");
    let got: Vec<(&str, &str)> = api
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        got,
        [("A", "a1"), ("B", "b2"), ("C", "from-env"), ("D", "/h/x")]
    );
    assert_eq!(
        loaded.environment.service("one").expect("one").env["B"],
        "a2"
    );

    std::fs::remove_file(dir.path().join("conf/b.env")).expect("rm");
    let e = one(&req(dir.path()));
    assert_eq!(
        (e.file.as_path(), e.line, e.column),
        (file.as_path(), 9, 26)
    );
    assert_eq!(e.key, "spec.services[0].envFile[1]");
    assert!(e.message.contains("conf/b.env does not exist"), "{e}");
}

#[test]
fn dotenv_values_expand_and_show_their_line() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run ${{URL}}\n      ports: [\"${{PORT}}\"]\n"
    ));
    let dotenv = write(
        dir.path(),
        ".env",
        "USER=app\nPORT=8001\nURL=http://${USER}@${HOST}:${PORT}\n",
    );
    let loaded = ok(&LoadRequest {
        vars: BTreeMap::from([("HOST".to_owned(), "h".to_owned())]),
        ..req(dir.path())
    });
    let api = loaded.environment.service("api").expect("api");
    assert_eq!(
        api.command,
        Some(Command::Shell("run http://app@h:8001".into()))
    );
    let (_, origin) = value(&loaded, "spec.services[0].command");
    assert_eq!(
        origin,
        &Origin::Via {
            at: Box::new(at(&file, 8, 16)),
            vars: vec![("URL".into(), at(&dotenv, 3, 1))],
        }
    );
    assert!(
        origin
            .to_string()
            .ends_with(&format!("${{URL}} from {}:3:1", dotenv.display())),
        "{origin}"
    );
    assert_eq!(api.ports, [8001]);
}

#[test]
fn camel_case_override_without_the_key_in_any_file() {
    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run\n      ports: [8000]\n      readiness: {{ tcp: {{}} }}\n"
    ));
    let loaded = ok(&LoadRequest {
        vars: BTreeMap::from([(
            "DEVENV_SPEC__SERVICES__API__READINESS__TIMEOUTSECONDS".to_owned(),
            "7".to_owned(),
        )]),
        ..req(dir.path())
    });
    let api = loaded.environment.service("api").expect("api");
    assert_eq!(
        api.readiness.as_ref().map(|r| r.timeout),
        Some(Duration::from_secs(7))
    );
    let (_, origin) = value(&loaded, "spec.services[0].readiness.timeoutSeconds");
    assert_eq!(
        origin,
        &Origin::EnvVar("DEVENV_SPEC__SERVICES__API__READINESS__TIMEOUTSECONDS".into())
    );
}

#[test]
fn missing_paths_are_located_and_watch_paths_say_their_base() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  cluster: {{ provider: kubeconfig }}\n  services:\n    - name: api\n      command: run\n      workdir: ./backend\n      watch: {{ paths: [./src] }}\n    - name: gone\n      command: run\n      workdir: ./nowhere\n    - name: web\n      image: nginx\n      dev: {{ sync: [{{ from: ./dist, to: /app }}] }}\n"
    ));
    std::fs::create_dir_all(dir.path().join("backend/src")).expect("mkdir");
    let e = errs(&req(dir.path()));
    assert_eq!(e.len(), 3, "{}", ConfigErrors(e.clone()));
    assert_eq!(
        (e[0].line, e[0].key.as_str()),
        (11, "spec.services[0].watch.paths[0]")
    );
    assert!(e[0]
        .message
        .contains("relative watch paths start at the project directory"));
    assert_eq!(
        e[0].hint.as_deref(),
        Some("it exists relative to `workdir`: write `./backend/src`")
    );
    assert_eq!(
        (e[1].line, e[1].key.as_str()),
        (14, "spec.services[1].workdir")
    );
    assert!(
        e[1].message.contains("workdir `./nowhere` does not exist"),
        "{}",
        e[1]
    );
    assert_eq!(
        (e[2].line, e[2].key.as_str()),
        (17, "spec.services[2].dev.sync[0].from")
    );
    assert!(e.iter().all(|e| e.file == file));
}

#[test]
fn shorthand_where_a_mapping_is_expected_gets_an_example() {
    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run\n      readiness: {{ exec: \"pg_isready\" }}\n"
    ));
    let e = one(&req(dir.path()));
    assert_eq!(
        (e.line, e.key.as_str()),
        (9, "spec.services[0].readiness.exec")
    );
    assert_eq!(e.message, "expected a mapping, found a string");
    assert_eq!(
        e.hint.as_deref(),
        Some("this key takes a mapping, e.g. `exec: {command: \"...\"}`")
    );
}

#[test]
fn readiness_port_outside_ports_is_a_located_warning() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run\n      ports: [8000]\n      readiness: {{ http: {{ path: /, port: 8001 }} }}\n"
    ));
    let loaded = ok(&req(dir.path()));
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert_eq!((w.file.as_path(), w.line), (file.as_path(), 10));
    assert_eq!(w.key, "spec.services[0].readiness.http.port");
    assert!(
        w.message
            .contains("port 8001, which is not among its ports (8000)"),
        "{w}"
    );
}

#[test]
fn profiles_select_like_compose() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: db\n      command: run\n    - name: debugger\n      command: run\n      profiles: [debug]\n    - name: api\n      command: run\n      dependencies: [db]\n    - name: probe\n      command: run\n      profiles: [debug, tools]\n      dependencies: [debugger]\n    - name: uses-debugger\n      command: run\n      profiles: [extra]\n      dependencies: [debugger]\n"
    ));
    let loaded = ok(&req(dir.path()));
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let select = |requested: &[&str], profiles: &[&str]| {
        select_profiles(&loaded, &s(requested), &s(profiles))
    };
    assert_eq!(select(&[], &[]).expect("default"), s(&["db", "api"]));
    assert_eq!(
        select(&[], &["debug"]).expect("debug"),
        s(&["db", "debugger", "api", "probe"])
    );
    // Named: runs whatever its profiles; its dependencies must be active or named too.
    assert_eq!(select(&["debugger"], &[]).expect("named"), s(&["debugger"]));
    let e = select(&["uses-debugger"], &[])
        .expect_err("inactive dependency")
        .0;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].file.as_path(), e[0].line), (file.as_path(), 22));
    assert!(
        e[0].message.contains(
            "`uses-debugger` depends on `debugger`, which runs only with profile `debug`"
        ),
        "{}",
        e[0]
    );
    assert!(select(&["uses-debugger", "debugger"], &[]).is_ok());
    let e = select(&[], &["tool"]).expect_err("unknown profile").0;
    assert_eq!(e[0].message, "no service has profile `tool`");
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `tools`?"));
}

#[test]
fn a_presets_port_and_probe_are_in_the_checked_config_and_in_config_show() {
    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: db\n      type: postgresql\n      envFile: db.env\n      env: {{ POSTGRES_PASSWORD: s3cret-pw }}\n    - name: cache\n      type: redis\n      ports: [7000]\n      env: {{ REDIS_PASSWORD: r3dis-pw }}\n"
    ));
    write(dir.path(), "db.env", "POSTGRES_USER=app\n");
    let loaded = ok(&req(dir.path()));
    let db = loaded.environment.service("db").expect("db");
    assert_eq!(db.ports, vec![5432]);
    let r = db.readiness.as_ref().expect("the preset's probe");
    assert_eq!(r.timeout, Duration::from_secs(60));
    assert!(
        matches!(&r.probe, Probe::Postgres { port: 5432, user, database, .. } if user == "app" && database == "app"),
        "the user from the envFile: {:?}",
        r.probe
    );
    let cache = loaded.environment.service("cache").expect("cache");
    assert!(matches!(
        cache.readiness.as_ref().map(|r| &r.probe),
        Some(Probe::Redis { port: 7000, .. })
    ));

    let shown = |path: &str| {
        loaded
            .values
            .iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, v, o)| (v.clone(), o.clone()))
    };
    assert_eq!(
        shown("spec.services[0].ports[0]"),
        Some(("5432".into(), Origin::Default))
    );
    assert_eq!(
        shown("spec.services[0].readiness.postgres.user"),
        Some(("app".into(), Origin::Default))
    );
    assert_eq!(
        shown("spec.services[0].readiness.timeoutSeconds"),
        Some(("60".into(), Origin::Default))
    );
    assert!(matches!(
        shown("spec.services[1].ports[0]"),
        Some((v, Origin::File { .. })) if v == "7000"
    ));
    assert_eq!(
        shown("spec.services[1].readiness.redis.port"),
        Some(("7000".into(), Origin::Default))
    );
    // The password shows where it was written (env), never in the probe.
    assert_eq!(
        loaded.merged_yaml.matches("r3dis-pw").count(),
        1,
        "{}",
        loaded.merged_yaml
    );
}

#[test]
fn a_log_probe_is_compiled_once_when_checked() {
    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run\n      readiness: {{ log: {{ pattern: \"listening on [0-9]+\" }} }}\n"
    ));
    let loaded = ok(&req(dir.path()));
    let svc = loaded.environment.service("api").expect("api");
    let Some(Probe::Log { pattern }) = svc.readiness.as_ref().map(|r| &r.probe) else {
        panic!("{:?}", svc.readiness)
    };
    assert!(pattern.is_match("api: listening on 8000"));
    assert!(!pattern.is_match("listening on port"));
    assert_eq!(pattern.to_string(), "listening on [0-9]+");
    assert_eq!(*pattern, LogPattern::new("listening on [0-9]+").unwrap());
}

#[test]
fn referenced_vars_are_the_names_the_files_use_and_the_overrides() {
    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: api\n      command: run ${{API_PORT:-8000}} $$NOT_A_REF\n      envFile: ./api.env\n      env: {{ URL: \"${{DB_URL}}\" }}\n"
    ));
    write(
        dir.path(),
        ".env",
        "DB_URL=postgres://${DB_HOST}/x\nLIT='${NOT_EXPANDED}'\n",
    );
    write(dir.path(), "api.env", "TOKEN=${API_TOKEN:-none}\n");
    let mut r = req(dir.path());
    r.vars = [
        ("API_TOKEN", "t"),
        ("DB_HOST", "h"),
        ("DEVENV_SPEC__SERVICES__0__RESTART", "always"),
        ("AWS_SECRET_ACCESS_KEY", "never"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let loaded = ok(&r);
    let names: Vec<&str> = loaded.referenced_vars.iter().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "API_PORT",
            "API_TOKEN",
            "DB_HOST",
            "DB_URL",
            "DEVENV_SPEC__SERVICES__0__RESTART"
        ]
    );
}

#[test]
fn an_image_runs_in_a_container_without_a_cluster_and_on_kubernetes_with_one() {
    let svc = "    - name: web\n      image: busybox:1\n      command: httpd -f\n      ports: [80]\n      forward: [\"8080:80\"]\n";
    let (dir, _) = project(&format!("{HEAD}spec:\n  services:\n{svc}"));
    let loaded = ok(&req(dir.path()));
    assert_eq!(
        loaded.environment.services[0].runtime,
        RuntimeKind::Container
    );

    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  cluster: {{ provider: kubeconfig }}\n  services:\n{svc}"
    ));
    let loaded = ok(&req(dir.path()));
    assert_eq!(
        loaded.environment.services[0].runtime,
        RuntimeKind::Kubernetes
    );

    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  cluster: {{ provider: kubeconfig }}\n  services:\n{svc}      runtime: container\n"
    ));
    let loaded = ok(&req(dir.path()));
    assert_eq!(
        loaded.environment.services[0].runtime,
        RuntimeKind::Container
    );
}

#[test]
fn watch_on_a_container_needs_build_and_watches_its_context() {
    // An image it does not build: a change can do nothing to it.
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: web\n      image: busybox:1\n      watch: {{}}\n"
    ));
    let e = one(&req(dir.path()));
    assert_eq!(e.key, "spec.services[0].watch");
    assert_at(&e, &file, 9, 14);
    assert!(e.message.contains("a container on the local engine"), "{e}");

    // Built: `exec` (a host command) is refused; a restart rebuilds.
    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: web\n      build: {{ context: ./app }}\n      watch: {{ action: {{ exec: make }} }}\n"
    ));
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let e = one(&req(dir.path()));
    assert_eq!(e.key, "spec.services[0].watch.action", "{e}");

    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: web\n      build: {{ context: ./app }}\n      watch: {{ ignore: [\"*.log\"] }}\n"
    ));
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let loaded = ok(&req(dir.path()));
    let web = &loaded.environment.services[0];
    assert_eq!(web.runtime, RuntimeKind::Container);
    let w = web.watch.as_ref().expect("watch");
    assert_eq!(w.paths, vec![dir.path().join("app")]);
    assert_eq!(w.action, WatchAction::Restart);
}

#[test]
fn container_services_refuse_what_does_not_apply_located() {
    let (dir, file) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: web\n      image: busybox:1\n      replicas: 2\n      workdir: ./x\n"
    ));
    let e = errs(&req(dir.path()));
    assert_eq!(e.len(), 2, "{}", ConfigErrors(e.clone()));
    let by_key = |k: &str| e.iter().find(|e| e.key == k).expect(k).clone();
    let workdir = by_key("spec.services[0].workdir");
    assert_at(&workdir, &file, 10, 16);
    assert!(
        workdir
            .message
            .contains("does not apply to service `web`, a container"),
        "{workdir}"
    );
    assert_at(&by_key("spec.services[0].replicas"), &file, 9, 17);

    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: web\n      command: run\n      runtime: container\n"
    ));
    let e = one(&req(dir.path()));
    assert_eq!(e.key, "spec.services[0].runtime");
    assert!(e.message.contains("no `image`"), "{e}");

    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: web\n      chart: ./c\n      runtime: container\n"
    ));
    let e = one(&req(dir.path()));
    assert_eq!(e.key, "spec.services[0].chart");

    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: web\n      image: x\n      runtime: docker\n"
    ));
    let e = one(&req(dir.path()));
    assert_eq!(e.key, "spec.services[0].runtime");

    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  services:\n    - name: web\n      image: x\n      runtime: kubernetes\n"
    ));
    let e = one(&req(dir.path()));
    assert!(e.message.contains("no `spec.cluster`"), "{e}");
}

#[test]
fn a_docker_volume_has_no_size_but_a_claim_or_a_tmpfs_has() {
    let head = "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\nspec:\n";
    let (dir, file) = project(&format!(
        "{head}  volumes:\n    - {{ name: data, size: 1Gi }}\n  services:\n    - name: db\n      image: busybox:1\n      volumes: [\"data:/data\"]\n"
    ));
    let e = one(&req(dir.path()));
    assert_at(&e, &file, 11, 17);
    assert!(
        e.message.contains("`size: 1Gi`") && e.message.contains("a Docker volume has no size"),
        "{e}"
    );
    // Without `size`, or as a tmpfs, or when a kubernetes service mounts it too.
    let (dir, _) = project(&format!(
        "{head}  volumes:\n    - {{ name: data }}\n    - {{ name: fast, type: tmpfs, size: 8Mi }}\n  services:\n    - name: db\n      image: busybox:1\n      volumes: [\"data:/data\", \"fast:/fast\"]\n"
    ));
    ok(&req(dir.path()));
    let (dir, _) = project(&format!(
        "{head}  cluster: {{ provider: kubeconfig }}\n  volumes:\n    - {{ name: data, size: 1Gi }}\n  services:\n    - name: db\n      image: busybox:1\n      runtime: container\n      volumes: [\"data:/data\"]\n    - name: web\n      image: busybox:1\n      volumes: [\"data:/data\"]\n"
    ));
    ok(&req(dir.path()));
}

#[test]
fn a_variable_only_a_secrets_inline_data_names_is_not_referenced_for_recovery() {
    let (dir, _) = project(&format!(
        "{HEAD}spec:\n  secrets:\n    - name: db\n      data: {{ PASSWORD: \"${{DB_PASSWORD}}\", USER: \"${{DB_USER}}\" }}\n  services:\n    - name: api\n      command: run ${{DB_USER}}\n      secrets: [db]\n"
    ));
    let mut r = req(dir.path());
    r.vars = [("DB_PASSWORD", "hunter2"), ("DB_USER", "app")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let loaded = ok(&r);
    let names: Vec<&str> = loaded.referenced_vars.iter().map(String::as_str).collect();
    // DB_USER is also on a command line, so a recovery needs it; DB_PASSWORD is not kept.
    assert_eq!(names, ["DB_USER"]);
}
