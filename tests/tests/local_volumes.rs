//! Volumes of a local service through the real daemon and CLI: each volume it mounts is
//! a directory named by `DEVENV_VOLUME_<NAME>`; persistent data outlives `down` and is
//! removed by `down --volumes`; a tmpfs volume is on a tmpfs and gone after `down`; a
//! configmap volume shows its file; a host volume is the host directory itself.

use std::path::PathBuf;

use devenv_e2e::TestEnv;

const CONFIG: &str = r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: vols
  version: "2.1"
spec:
  volumes:
    - { name: data, type: persistent, storageClass: local-path }
    - { name: cache, type: tmpfs, size: 16Mi }
    - { name: conf, type: configmap, source: ./config/app.conf }
    - { name: out, type: host, source: ./out }
  services:
    - name: job
      oneshot: true
      volumes: ["data:/data", "cache:/cache", "conf:/etc/app", "out:/out"]
      command: |
        set -e
        echo run >> "$DEVENV_VOLUME_DATA/runs"
        echo kept > "$DEVENV_VOLUME_CACHE/x"
        echo "$DEVENV_VOLUME_DATA" > "$DEVENV_VOLUME_OUT/data-path"
        echo "$DEVENV_VOLUME_CACHE" > "$DEVENV_VOLUME_OUT/cache-path"
        cat "$DEVENV_VOLUME_CONF/app.conf" > "$DEVENV_VOLUME_OUT/conf"
"#;

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[test]
fn local_volumes_map_to_directories_and_persist_across_down_until_down_volumes() {
    let env = TestEnv::new();
    env.write_config(CONFIG);
    let project = env.project.clone();
    std::fs::create_dir_all(project.join("config")).unwrap();
    std::fs::create_dir_all(project.join("out")).unwrap();
    std::fs::write(project.join("config/app.conf"), "greeting=hello\n").unwrap();

    env.devenv_ok(&["validate"]);
    env.devenv_ok(&["up"]);
    let out = project.join("out");
    let data = PathBuf::from(read(&out.join("data-path")));
    let cache = PathBuf::from(read(&out.join("cache-path")));
    assert_eq!(
        read(&out.join("conf")),
        "greeting=hello",
        "the configmap's file"
    );
    assert_eq!(read(&data.join("runs")), "run");
    assert!(
        data.ends_with("volumes/data") && !data.starts_with(&project),
        "persistent data lives under the data dir: {}",
        data.display()
    );
    // The tmpfs volume is on a tmpfs (Linux: /dev/shm), whatever the data dir is on.
    let fs = env.run(
        std::path::Path::new("stat"),
        &["-f", "-c", "%T", cache.to_str().unwrap()],
        Default::default(),
    );
    assert_eq!(fs.stdout.trim(), "tmpfs", "{fs}");
    assert_eq!(read(&cache.join("x")), "kept");

    // `status --json` and `ls` carry metadata.version.
    let status = env.status_json();
    assert_eq!(status["version"], "2.1", "{status}");
    let ls = env.devenv_ok(&["ls"]);
    assert!(ls.stdout.contains("2.1"), "{ls}");

    // down keeps persistent data and removes the transient volumes.
    let down = env.devenv_ok(&["down"]);
    assert!(
        !cache.exists(),
        "tmpfs removed by down: {}",
        cache.display()
    );
    assert!(down.to_string().contains("data (local volume)"), "{down}");
    env.devenv_ok(&["up"]);
    assert_eq!(
        read(&data.join("runs")),
        "run\nrun",
        "data kept across down/up"
    );

    // down --volumes removes it; the next up starts from nothing.
    env.devenv_ok(&["down", "--volumes"]);
    assert!(
        !data.exists(),
        "removed by down --volumes: {}",
        data.display()
    );
    env.devenv_ok(&["up"]);
    assert_eq!(read(&data.join("runs")), "run");
    env.devenv_ok(&["down", "--volumes"]);
}

/// A local service's hooks get its volumes as its process does: `preStart` seeds the
/// persistent volume before the process runs (the directory exists for it), the
/// process reads the seed, `postReady` sees what the process wrote.
#[test]
fn hooks_of_a_local_service_get_its_volume_variables() {
    let env = TestEnv::new();
    env.write_config(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: hookvols
spec:
  volumes:
    - { name: seed-data, type: persistent }
  services:
    - name: app
      volumes: ["seed-data:/data"]
      command: 'cat "$DEVENV_VOLUME_SEED_DATA/seed" > "$DEVENV_VOLUME_SEED_DATA/copied"; touch copied-flag; exec sleep 300'
      readiness: { exec: { command: [test, -f, copied-flag] } }
      hooks:
        preStart: ['echo "$DEVENV_VOLUME_SEED_DATA" > pre-path; echo seeded > "$DEVENV_VOLUME_SEED_DATA/seed"']
        postReady: ['cat "$DEVENV_VOLUME_SEED_DATA/copied" > post-saw']
"#,
    );
    env.devenv_ok(&["up"]);
    let dir = PathBuf::from(read(&env.project.join("pre-path")));
    assert!(
        dir.ends_with("volumes/seed-data"),
        "the preStart hook's DEVENV_VOLUME_SEED_DATA: {}",
        dir.display()
    );
    assert_eq!(
        read(&dir.join("copied")),
        "seeded",
        "the process read the seed"
    );
    assert_eq!(
        read(&env.project.join("post-saw")),
        "seeded",
        "postReady saw the process's file in the same directory"
    );
    env.devenv_ok(&["down", "--volumes"]);
}
