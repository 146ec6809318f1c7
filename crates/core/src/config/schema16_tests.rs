//! The keys of issue 16's schema over real files: `metadata.version`, `type:
//! application`, `source:`, presets from a chart, ports in the long form with names
//! used by probes and forwards, and every volume type, each with its located errors.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::*;

const HEAD: &str = "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\n";
const CLUSTER: &str = "  cluster: { provider: kubeconfig }\n";

fn project(config: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(".devenv/config.yml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, config).unwrap();
    (dir, file)
}

fn load_in(dir: &Path) -> Result<Loaded, ConfigErrors> {
    load(&LoadRequest {
        start_dir: dir.to_path_buf(),
        ..LoadRequest::default()
    })
}

fn ok(config: &str, setup: impl FnOnce(&Path)) -> (TempDir, Environment) {
    let (dir, _) = project(config);
    setup(dir.path());
    match load_in(dir.path()) {
        Ok(l) => (dir, l.environment),
        Err(e) => panic!("expected the config to load, got:\n{e}"),
    }
}

/// The one error of `config`, with its file line.
fn one(config: &str, setup: impl FnOnce(&Path)) -> ConfigError {
    let (dir, _) = project(config);
    setup(dir.path());
    match load_in(dir.path()) {
        Ok(l) => panic!("expected an error, loaded {:?}", l.environment),
        Err(ConfigErrors(mut errors)) => {
            assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
            errors.remove(0)
        }
    }
}

fn nothing(_: &Path) {}

fn line_of(e: &ConfigError) -> u32 {
    e.line
}

#[test]
fn metadata_version_is_kept_as_text() {
    let (_d, env) = ok(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\n  version: \"1.0\"\n",
        nothing,
    );
    assert_eq!(env.version.as_deref(), Some("1.0"));
    let (_d, env) = ok(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\n  version: 2\n",
        nothing,
    );
    assert_eq!(env.version.as_deref(), Some("2"), "a number is its text");
    let (_d, env) = ok(HEAD, nothing);
    assert_eq!(env.version, None);
    let long = "x".repeat(65);
    let e = one(
        &format!("apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\n  version: {long}\n"),
        nothing,
    );
    assert_eq!(e.key, "metadata.version");
    assert_eq!(line_of(&e), 5);
}

#[test]
fn type_application_runs_from_its_other_keys() {
    let (_d, env) = ok(
        &format!(
            "{HEAD}spec:\n{CLUSTER}  services:\n    - name: api\n      type: application\n      command: sleep 1\n    - name: web\n      type: application\n      image: nginx\n"
        ),
        nothing,
    );
    assert_eq!(env.services[0].runtime, RuntimeKind::Local);
    assert_eq!(env.services[0].preset, None);
    assert_eq!(env.services[1].runtime, RuntimeKind::Kubernetes);
    let e = one(
        &format!("{HEAD}spec:\n  services:\n    - name: api\n      type: application\n"),
        nothing,
    );
    assert!(e.message.contains("nothing to run"), "{e}");
    let e = one(
        &format!(
            "{HEAD}spec:\n  services:\n    - name: api\n      type: aplication\n      command: x\n"
        ),
        nothing,
    );
    assert!(
        e.message.contains("application"),
        "the variants are listed: {e}"
    );
}

#[test]
fn source_is_the_default_build_context_sync_source_and_watch_path() {
    let config = format!(
        "{HEAD}spec:\n{CLUSTER}  services:
    - name: api
      source: ./services/api
      image: api:dev
      build: {{ dockerfile: ./services/api/Dockerfile }}
      dev:
        sync: [{{ to: /app }}]
    - name: worker
      source: ./services/worker
      command: ./run
      workdir: ./services/worker
      watch: {{ action: restart }}
    - name: plain
      command: ./run
      watch: {{ action: restart }}
      build: {{}}
      image: x
"
    );
    let (dir, env) = ok(&config, |d| {
        std::fs::create_dir_all(d.join("services/api")).unwrap();
        std::fs::create_dir_all(d.join("services/worker")).unwrap();
    });
    let root = dir
        .path()
        .canonicalize()
        .unwrap_or(dir.path().to_path_buf());
    let api = &env.services[0];
    let src = api.source.clone().unwrap();
    assert!(src.ends_with("services/api"), "{src:?}");
    assert_eq!(
        api.build.as_ref().unwrap().context,
        src,
        "default build context"
    );
    assert_eq!(
        api.dev.as_ref().unwrap().sync[0].from,
        src,
        "default sync source"
    );
    let worker = &env.services[1];
    assert_eq!(
        worker.watch.as_ref().unwrap().paths,
        [worker.source.clone().unwrap()],
        "default watch path"
    );
    let plain = &env.services[2];
    assert_eq!(plain.source, None);
    assert!(
        plain
            .build
            .as_ref()
            .unwrap()
            .context
            .ends_with(root.file_name().unwrap())
            || plain.build.as_ref().unwrap().context == dir.path(),
        "without source the context is the project dir"
    );

    let e = one(
        &format!(
            "{HEAD}spec:\n  services:\n    - name: api\n      command: x\n      source: ./nope\n"
        ),
        nothing,
    );
    assert_eq!(e.key, "spec.services[0].source");
    assert_eq!(line_of(&e), 9);
    let e = one(
        &format!(
            "{HEAD}spec:\n{CLUSTER}  services:\n    - name: api\n      image: x\n      dev:\n        sync: [{{ to: /app }}]\n"
        ),
        nothing,
    );
    assert_eq!(e.key, "spec.services[0].dev.sync[0]");
    assert!(e.hint.as_deref().unwrap_or("").contains("source"), "{e}");
}

#[test]
fn a_preset_from_a_chart_keeps_its_port_and_installs_the_chart() {
    let (_d, env) = ok(
        &format!(
            "{HEAD}spec:\n{CLUSTER}  services:
    - name: database
      type: postgresql
      chart: ./charts/postgresql
      values: {{ auth: {{ database: myapp }} }}
      env: {{ POSTGRES_PASSWORD: pw }}
"
        ),
        nothing,
    );
    let db = &env.services[0];
    assert_eq!(db.runtime, RuntimeKind::Kubernetes);
    assert_eq!(db.preset, Some(Preset::Postgresql));
    assert_eq!(db.chart.as_deref(), Some("./charts/postgresql"));
    assert_eq!(db.ports, [5432], "the preset's port: its connection info");
    assert_eq!(db.values.as_ref().unwrap()["auth"]["database"], "myapp");

    let e = one(
        &format!(
            "{HEAD}spec:\n{CLUSTER}  services:\n    - name: db\n      type: redis\n      manifests: ./k8s\n"
        ),
        nothing,
    );
    assert_eq!(e.key, "spec.services[0].manifests");
}

#[test]
fn ports_take_the_long_form_and_names_serve_probes_and_forwards() {
    let (_d, env) = ok(
        &format!(
            "{HEAD}spec:\n{CLUSTER}  services:
    - name: web
      image: web:dev
      ports:
        - {{ name: http, port: 80, targetPort: 8080 }}
        - 9090
        - {{ name: dns, port: 53, protocol: UDP }}
      readiness: {{ http: {{ path: /healthz, port: http }} }}
      forward: [\"18080:http\", \"19090:9090\"]
"
        ),
        nothing,
    );
    let web = &env.services[0];
    assert_eq!(web.ports, [80, 9090, 53]);
    assert_eq!(web.port_specs[0].name.as_deref(), Some("http"));
    assert_eq!(web.port_specs[0].target_port, 8080);
    assert_eq!(web.port_specs[1], PortSpec::number(9090));
    assert_eq!(web.port_specs[2].protocol, Protocol::Udp);
    match &web.readiness.as_ref().unwrap().probe {
        Probe::Http { port, path, .. } => {
            assert_eq!(
                (*port, path.as_str()),
                (8080, "/healthz"),
                "the target port"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(web.forward, [(18080, 8080), (19090, 9090)]);

    // A probe without a port takes the first port's target.
    let (_d, env) = ok(
        &format!(
            "{HEAD}spec:\n  services:\n    - name: api\n      command: x\n      ports: [{{ name: http, port: 8000 }}]\n      readiness: {{ tcp: {{}} }}\n"
        ),
        nothing,
    );
    assert!(matches!(
        env.services[0].readiness.as_ref().unwrap().probe,
        Probe::Tcp { port: 8000, .. }
    ));
}

#[test]
fn port_mistakes_are_located_with_hints() {
    let svc =
        |body: &str| format!("{HEAD}spec:\n  services:\n    - name: api\n      command: x\n{body}");
    let e = one(
        &svc(
            "      ports: [{ name: http, port: 8000 }]\n      readiness: { http: { port: htp } }\n",
        ),
        nothing,
    );
    assert_eq!(e.key, "spec.services[0].readiness.http.port");
    assert_eq!(line_of(&e), 10);
    assert!(e.hint.as_deref().unwrap_or("").contains("`http`"), "{e}");

    let e = one(&svc("      ports: [{ name: HTTP, port: 8000 }]\n"), nothing);
    assert_eq!(e.key, "spec.services[0].ports[0].name");

    let e = one(
        &svc("      ports: [{ name: http, port: 80 }, { name: http, port: 81 }]\n"),
        nothing,
    );
    assert!(e.message.contains("used twice"), "{e}");

    let e = one(&svc("      ports: [{ name: http }]\n"), nothing);
    assert_eq!(e.key, "spec.services[0].ports[0]");

    let e = one(
        &svc("      ports: [{ port: 80, targetPort: 70000 }]\n"),
        nothing,
    );
    assert_eq!(e.key, "spec.services[0].ports[0].targetPort");

    let e = one(&svc("      ports: [{ port: 80, protocl: TCP }]\n"), nothing);
    assert!(e.message.contains("protocl"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("protocol"), "{e}");

    let e = one(
        &svc("      ports: [{ port: 80, protocol: HTTP }]\n"),
        nothing,
    );
    assert_eq!(e.key, "spec.services[0].ports[0].protocol");

    let e = one(
        &svc("      ports: [8000]\n      forward: [\"8080:web\"]\n"),
        nothing,
    );
    assert_eq!(e.key, "spec.services[0].forward[0]");
}

#[test]
fn every_volume_type_and_its_keys() {
    let config = format!(
        "{HEAD}spec:
  volumes:
    - {{ name: data, type: persistent, size: 2Gi, storageClass: local-path, accessMode: ReadWriteMany }}
    - {{ name: plain }}
    - {{ name: scratch, type: ephemeral, size: 100Mi }}
    - {{ name: cache, type: tmpfs, size: 64Mi }}
    - {{ name: conf, type: configmap, source: ./config/ }}
    - {{ name: one, type: configmap, source: ./config/app.conf }}
    - {{ name: logs, type: host, source: /tmp, force: true }}
  services:
    - name: api
      command: x
      volumes: [\"data:/data\", \"conf:/etc/app\"]
"
    );
    let (dir, env) = ok(&config, |d| {
        std::fs::create_dir_all(d.join("config")).unwrap();
        std::fs::write(d.join("config/app.conf"), "a=1").unwrap();
    });
    let v = |n: &str| env.volumes.iter().find(|v| v.name == n).unwrap().clone();
    assert_eq!(
        v("data").kind,
        VolumeKind::Persistent {
            storage_class: Some("local-path".into()),
            access_mode: "ReadWriteMany".into()
        }
    );
    assert_eq!(v("data").size.as_deref(), Some("2Gi"));
    assert_eq!(
        v("plain").kind,
        VolumeKind::Persistent {
            storage_class: None,
            access_mode: "ReadWriteOnce".into()
        },
        "persistent, ReadWriteOnce by default"
    );
    assert_eq!(v("plain").size, None);
    assert_eq!(v("scratch").kind, VolumeKind::Ephemeral);
    assert_eq!(v("cache").kind, VolumeKind::Tmpfs);
    match v("conf").kind {
        VolumeKind::Configmap { source, .. } => {
            assert!(source.starts_with(dir.path()) || source.ends_with("config"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        v("logs").kind,
        VolumeKind::Host {
            path: "/tmp".into(),
            force: true
        }
    );
}

#[test]
fn volume_mistakes_are_located_with_hints() {
    let vol = |body: &str| format!("{HEAD}spec:\n  volumes:\n    - name: v\n{body}");
    // HEAD is 4 lines, then `spec:`, `volumes:`, `- name: v`: the body starts at line 8.
    let e = one(
        &vol("      type: tmpfs\n      storageClass: fast\n"),
        nothing,
    );
    assert_eq!(e.key, "spec.volumes[0].storageClass");
    assert_eq!(line_of(&e), 9);
    assert!(
        e.hint.as_deref().unwrap_or("").contains("persistent"),
        "{e}"
    );

    let e = one(&vol("      accessMode: ReadWriteOne\n"), nothing);
    assert_eq!(e.key, "spec.volumes[0].accessMode");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("ReadWriteOnce"),
        "{e}"
    );

    let e = one(&vol("      storageClass: Fast_SSD\n"), nothing);
    assert_eq!(e.key, "spec.volumes[0].storageClass");

    let e = one(&vol("      type: configmap\n"), nothing);
    assert_eq!(e.key, "spec.volumes[0]");
    assert!(e.message.contains("no `source`"), "{e}");

    let e = one(
        &vol("      type: configmap\n      source: ./missing\n"),
        nothing,
    );
    assert_eq!(e.key, "spec.volumes[0].source");
    assert_eq!(line_of(&e), 9);

    let e = one(&vol("      type: persistent\n      source: ./x\n"), nothing);
    assert_eq!(e.key, "spec.volumes[0].source");

    let e = one(&vol("      type: ephemeral\n      force: true\n"), nothing);
    assert_eq!(e.key, "spec.volumes[0].force");

    let e = one(
        &vol("      type: host\n      source: /tmp\n      size: 1Gi\n"),
        nothing,
    );
    assert_eq!(e.key, "spec.volumes[0].size");

    let e = one(&vol("      type: tmpfs\n      size: lots\n"), nothing);
    assert_eq!(e.key, "spec.volumes[0].size");

    let e = one(&vol("      type: nfs\n"), nothing);
    assert!(
        e.message.contains("configmap") && e.message.contains("host"),
        "{e}"
    );

    let e = one(&vol("      sorce: ./x\n"), nothing);
    assert!(e.hint.as_deref().unwrap_or("").contains("source"), "{e}");
}

#[test]
fn a_configmap_file_change_is_a_change_of_the_services_mounting_it() {
    let config = format!(
        "{HEAD}spec:\n  volumes:\n    - {{ name: conf, type: configmap, source: ./config }}\n  services:\n    - name: api\n      command: x\n      volumes: [\"conf:/etc/app\"]\n"
    );
    let (dir, _) = project(&config);
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/app.conf"), "a=1").unwrap();
    let first = load_in(dir.path()).unwrap().environment;
    let again = load_in(dir.path()).unwrap().environment;
    assert_eq!(
        first.services[0], again.services[0],
        "same files, same service"
    );
    std::fs::write(dir.path().join("config/app.conf"), "a=2").unwrap();
    let changed = load_in(dir.path()).unwrap().environment;
    assert_ne!(
        first.services[0], changed.services[0],
        "`up` replaces a service whose configmap changed"
    );
    assert!(changed.services[0].volumes[0].content.is_some());

    std::fs::write(dir.path().join("config/blob"), [0xffu8, 0xfe, 0]).unwrap();
    let Err(ConfigErrors(errors)) = load_in(dir.path()) else {
        panic!("a binary file in a configmap volume is an error");
    };
    assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
    assert_eq!(errors[0].key, "spec.volumes[0].source");
    assert!(errors[0].message.contains("not UTF-8"), "{}", errors[0]);
}
