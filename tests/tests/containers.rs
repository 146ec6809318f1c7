//! The container runtime on a real Docker engine: `image:` services without a cluster
//! run as containers on one network per environment, reach each other by name,
//! publish forwards on 127.0.0.1, log into `devenv logs`, are re-adopted (not
//! duplicated) after a daemon SIGKILL, and `down` leaves nothing in the engine.

use std::collections::BTreeMap;
use std::time::Duration;

use devenv_e2e::docker::{busybox_image, containers_of, networks_of, EngineCleanup};
use devenv_e2e::{free_ports, http_get, service_states, wait_until, TestEnv};

/// A name no other test (or earlier run) uses: the engine is shared.
fn env_name(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

fn config(name: &str, image: &str, port: u16) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {name}
spec:
  services:
    - name: web
      image: {image}
      command: "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -v -p 8080 -h /www"
      ports: [8080]
      forward: ["{port}:8080"]
      readiness: {{ http: {{ path: /, port: 8080 }}, periodSeconds: 0.2 }}
    - name: client
      image: {image}
      command: "wget -q -O- http://web:8080/ && echo client-reached-web && exec sleep 100000"
      dependencies: [web]
      readiness: {{ log: {{ pattern: "client-reached-web" }} }}
"#
    )
}

#[test]
#[ignore = "needs a Docker engine: CI runs the ignored set as root, dockerd started by scripts/install-test-tools.sh"]
fn two_containers_on_one_network_forward_log_survive_sigkill_and_leave_nothing() {
    let image = busybox_image();
    let name = env_name("ctr");
    let _cleanup = EngineCleanup(name.clone());
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    env.write_config(&config(&name, image, port));

    env.devenv_ok(&["up"]);
    let status = env.status_json();
    let states = service_states(&status);
    assert_eq!(
        states,
        BTreeMap::from([
            ("client".to_owned(), "ready".to_owned()),
            ("web".to_owned(), "ready".to_owned())
        ]),
        "{status}"
    );
    for s in status["services"].as_array().expect("services") {
        assert_eq!(s["runtime"], "container", "{s}");
    }

    // The forward is published on 127.0.0.1.
    let page = http_get(port, "/").expect("the forward answers");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("hello-from-web"), "{}", page.body);

    // `client` reached `web` by its service name; its output is in `devenv logs`.
    let logs = env.devenv_ok(&["logs", "client"]);
    assert!(logs.stdout.contains("client-reached-web"), "{logs}");

    let before = containers_of(&name);
    assert_eq!(before.len(), 2, "containers: {before:?}");
    assert_eq!(networks_of(&name).len(), 1);

    // SIGKILL of the daemon leaves the containers running; the next daemon adopts
    // them instead of starting duplicates.
    env.kill_daemon_hard();
    let mut last = BTreeMap::new();
    let back = wait_until(Duration::from_secs(60), || {
        let out = env.devenv(&["status", "--json"]);
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout) else {
            return false;
        };
        last = service_states(&v);
        last.values().all(|s| s == "ready") && last.len() == 2
    });
    assert!(back, "not back up after the daemon's SIGKILL: {last:?}");
    let mut after = containers_of(&name);
    after.sort();
    let mut before_sorted = before.clone();
    before_sorted.sort();
    assert_eq!(
        after, before_sorted,
        "the containers were replaced, not adopted"
    );
    let logs = env.devenv_ok(&["logs", "web"]);
    assert!(logs.stdout.contains("adopted running container"), "{logs}");
    assert!(http_get(port, "/").is_some_and(|r| r.body.contains("hello-from-web")));

    // `down` removes the containers and the network.
    env.devenv_ok(&["down"]);
    assert_eq!(containers_of(&name), Vec::<String>::new());
    assert_eq!(networks_of(&name), Vec::<String>::new());
    assert!(http_get(port, "/").is_none(), "the forward outlived down");
}

#[test]
#[ignore = "needs a Docker engine: CI runs the ignored set as root, dockerd started by scripts/install-test-tools.sh"]
fn a_missing_image_fails_with_how_to_build_it() {
    busybox_image();
    let name = env_name("noimg");
    let _cleanup = EngineCleanup(name.clone());
    let env = TestEnv::new();
    env.write_config(&format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: {name}\nspec:\n  services:\n    - name: app\n      image: devenv-test/absent:0\n"
    ));
    let out = env.devenv(&["up"]);
    assert_eq!(out.code, Some(1), "{out}");
    let text = out.combined();
    assert!(
        text.contains("image `devenv-test/absent:0` is not in the local engine"),
        "{out}"
    );
    assert!(
        text.contains("docker build -t devenv-test/absent:0"),
        "{out}"
    );
    env.devenv_ok(&["down"]);
    assert!(containers_of(&name).is_empty());
}

/// Runs everywhere, engine or not: an unreachable engine is a failure with the
/// reason and the fix, and nothing is left half-started.
#[test]
fn no_engine_is_a_clear_failure() {
    let mut env = TestEnv::new();
    let sock = env.root().join("no-docker.sock");
    env.set_var("DOCKER_HOST", format!("unix://{}", sock.display()));
    env.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: noengine\nspec:\n  services:\n    - name: app\n      image: busybox:1\n",
    );
    let out = env.devenv(&["up"]);
    assert_eq!(out.code, Some(1), "{out}");
    let text = out.combined();
    assert!(
        text.contains("cannot reach a container engine at unix://"),
        "{out}"
    );
    assert!(text.contains("is dockerd running?"), "{out}");
    assert_eq!(env.states()["app"], "failed");
}

#[test]
#[ignore = "needs a Docker engine: CI runs the ignored set as root, dockerd started by scripts/install-test-tools.sh"]
fn named_volumes_outlive_down_binds_and_tmpfs_mount() {
    let image = busybox_image();
    let name = env_name("vol");
    let _cleanup = EngineCleanup(name.clone());
    let env = TestEnv::new();
    std::fs::create_dir_all(env.project.join("site")).expect("mkdir");
    std::fs::write(env.project.join("site/page.txt"), "from-the-host").expect("write");
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {name}
spec:
  volumes:
    - {{ name: data }}
    - {{ name: scratch, type: tmpfs, size: 16Mi }}
  services:
    - name: store
      image: {image}
      command: "cat /data/mark 2>/dev/null || echo no-mark; echo kept > /data/mark; cat /site/page.txt; grep -q ' /scratch tmpfs' /proc/mounts && echo scratch-is-tmpfs; touch /site/x 2>/dev/null || echo site-read-only; echo store-up; exec sleep 100000"
      volumes: ["data:/data", "scratch:/scratch", "./site:/site:ro"]
      readiness: {{ log: {{ pattern: store-up }} }}
"#
    ));
    env.devenv_ok(&["up"]);
    let logs = env.devenv_ok(&["logs", "store"]).stdout;
    for want in [
        "no-mark",
        "from-the-host",
        "scratch-is-tmpfs",
        "site-read-only",
    ] {
        assert!(logs.contains(want), "missing {want}:\n{logs}");
    }
    let down = env.devenv_ok(&["down"]);
    assert!(
        down.combined().contains("volume/"),
        "down names the kept volume: {down}"
    );
    assert!(containers_of(&name).is_empty());

    env.devenv_ok(&["up"]);
    let logs = env.devenv_ok(&["logs", "store"]).stdout;
    assert!(
        logs.contains("kept"),
        "the named volume's data survived down/up:\n{logs}"
    );
    env.devenv_ok(&["down", "--volumes"]);
    let left = std::process::Command::new("docker")
        .args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=dev.devenv.environment={name}"),
        ])
        .output()
        .expect("docker volume ls");
    assert!(left.stdout.is_empty(), "volumes left after down --volumes");
}

#[test]
#[ignore = "needs a Docker engine: CI runs the ignored set as root, dockerd started by scripts/install-test-tools.sh"]
fn a_restarted_container_service_runs_pre_stop_pre_start_and_post_ready() {
    let image = busybox_image();
    let name = env_name("hooks");
    let _cleanup = EngineCleanup(name.clone());
    let env = TestEnv::new();
    env.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {name}
spec:
  services:
    - name: box
      image: {image}
      command: "echo box-up; exec sleep 100000"
      readiness: {{ log: {{ pattern: box-up }} }}
      hooks:
        preStart: "echo box.preStart >> order.txt"
        postReady: "echo box.postReady >> order.txt"
        preStop: "echo box.preStop >> order.txt"
"#
    ));
    let order = || {
        std::fs::read_to_string(env.project.join("order.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    env.devenv_ok(&["up"]);
    assert_eq!(order(), ["box.preStart", "box.postReady"]);
    // `restart` returns once it is ready again: after its postReady.
    env.devenv_ok(&["restart", "box"]);
    assert_eq!(
        order(),
        [
            "box.preStart",
            "box.postReady",
            "box.preStop",
            "box.preStart",
            "box.postReady"
        ]
    );
    env.devenv_ok(&["down"]);
    assert_eq!(order().last().map(String::as_str), Some("box.preStop"));
}
