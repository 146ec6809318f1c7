//! The kubernetes runtime against the real test cluster (tests/cluster): a mixed
//! environment of local processes, an image Deployment, a manifests directory and a
//! preset on a locally built image; logs from all; a forward that survives the pod's
//! deletion; failures reported with their reason; down leaving nothing behind.
//!
//! Needs KUBECONFIG pointing at the test cluster; `tests/cluster/test.sh` runs these
//! with `--ignored`. Without a cluster they fail with that reason.

use std::time::Duration;

use devenv_e2e::kube::{env_for, kc, labelled, namespace_exists};
use devenv_e2e::{free_ports, http_get, wait_until};
use serde_json::Value;

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";
const REDIS: &str = "devenv.test/redis:7";

fn redis_ping(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_mixed_environment_up_logs_forward_down() {
    let (t, env) = env_for("mixed");
    let ports = free_ports(2);
    let (web_port, redis_port) = (ports[0], ports[1]);
    std::fs::create_dir_all(t.project.join("k8s")).unwrap();
    std::fs::write(
        t.project.join("k8s/platform.yaml"),
        format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: platform-config
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
spec:
  replicas: 1
  selector:
    matchLabels: {{ app: worker }}
  template:
    metadata:
      labels: {{ app: worker }}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: worker
          image: {BUSYBOX}
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "echo worker started; exec sleep 100000"]
"#
        ),
    )
    .unwrap();
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster:
    provider: kubeconfig
  services:
    - name: cache
      type: redis
      image: {REDIS}
      forward: ["{redis_port}:6379"]
    - name: web
      image: {BUSYBOX}
      command: "mkdir -p /www && hostname > /www/index.html && echo web serving && exec httpd -f -v -p 8080 -h /www"
      ports: [8080]
      forward: ["{web_port}:8080"]
      readiness: {{ path: /, port: 8080 }}
      dependencies: [cache]
    - name: prepare
      command: "echo prepared"
      oneshot: true
    - name: platform
      manifests: ./k8s
      dependencies: [prepare]
    - name: api
      command: "echo api up; exec sleep 100000"
      readiness: {{ log: {{ pattern: "api up" }} }}
      dependencies: [web, platform]
"#
    ));

    let up = t.devenv(&["up", "--json"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");
    // Dependency order from the progress events: when each service became ready.
    let ready_at: Vec<String> = up
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["state"] == "ready" || v["state"] == "completed")
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    let pos = |n: &str| {
        ready_at
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} never became ready: {ready_at:?}\n{up}"))
    };
    assert!(pos("cache") < pos("web"), "{ready_at:?}");
    assert!(pos("prepare") < pos("platform"), "{ready_at:?}");
    assert!(
        pos("web") < pos("api") && pos("platform") < pos("api"),
        "{ready_at:?}"
    );

    let cs: Value = serde_json::from_str(&t.devenv_ok(&["cluster", "status", "--json"]).stdout)
        .expect("cluster status --json");
    assert_eq!(cs["cluster"]["reachable"], true, "{cs}");
    assert!(
        cs["cluster"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("v1.33"),
        "{cs}"
    );

    let states = t.states();
    for s in ["cache", "web", "platform", "api"] {
        assert_eq!(states[s], "ready", "{states:?}");
    }
    assert_eq!(states["prepare"], "completed");

    // Everything devenv made is labelled and lives in the environment's namespace.
    let ns = format!("devenv-{env}");
    let objs = labelled(&env);
    for want in [
        "deployment.apps/web",
        "deployment.apps/cache",
        "deployment.apps/worker",
        "service/web",
        "configmap/platform-config",
        "persistentvolumeclaim/cache-data",
    ] {
        assert!(objs.iter().any(|o| o == want), "missing {want}: {objs:?}");
    }
    let managers = kc(&[
        "get",
        "deployment",
        "web",
        "-n",
        &ns,
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(
        managers.split(' ').any(|m| m == "devenv"),
        "field managers: {managers}"
    );

    // The preset on the locally built image answers through its forward.
    assert!(
        wait_until(Duration::from_secs(20), || redis_ping(redis_port)
            .as_deref()
            == Some("+PONG")),
        "redis did not answer PING through localhost:{redis_port}"
    );

    // Logs from local processes and pods, in one stream.
    assert!(
        wait_until(Duration::from_secs(20), || {
            let logs = t.devenv_ok(&["logs", "--tail", "500"]).stdout;
            logs.contains("web serving")
                && logs.contains("worker started")
                && logs.contains("api up")
        }),
        "logs lack lines from pods or processes:\n{}",
        t.devenv(&["logs", "--tail", "500"]).stdout
    );

    // The forward reaches the pod, and keeps working after the pod is deleted.
    let first = http_get(web_port, "/")
        .expect("GET through the forward")
        .body;
    let first = first.trim().to_owned();
    assert!(first.starts_with("web-"), "served: {first}");
    kc(&["delete", "pod", "-n", &ns, &first, "--wait=false"]);
    let mut second = String::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            match http_get(web_port, "/") {
                Some(r) if r.status == 200 && r.body.trim() != first => {
                    second = r.body.trim().to_owned();
                    true
                }
                _ => false,
            }
        }),
        "the forward did not reach a new pod after {first} was deleted; forward ls:\n{}",
        t.devenv(&["forward", "ls"]).stdout
    );
    assert!(second.starts_with("web-"), "{second}");
    let fwd: Value = serde_json::from_str(&t.devenv_ok(&["forward", "ls", "--json"]).stdout)
        .expect("forward ls --json");
    let web_fwd = fwd
        .as_array()
        .or_else(|| fwd["forwards"].as_array())
        .expect("a list of forwards")
        .iter()
        .find(|f| f["service"] == "web")
        .cloned()
        .expect("web's forward listed");
    assert_eq!(web_fwd["state"], "active", "{web_fwd}");
    assert!(
        web_fwd["reconnects"].as_u64().unwrap_or(0) >= 1,
        "{web_fwd}"
    );

    // Down: everything but the volume goes; with --volumes the namespace too.
    let down = t.devenv_ok(&["down"]);
    assert!(down.stdout.contains("kept volume(s) cache-data"), "{down}");
    let left = labelled(&env);
    assert_eq!(
        left,
        vec!["persistentvolumeclaim/cache-data".to_owned()],
        "after down"
    );
    assert!(
        namespace_exists(&ns),
        "namespace must stay while it holds a kept volume"
    );
    let down = t.devenv_ok(&["down", "--volumes"]);
    assert!(
        down.stdout.contains(&format!("removed namespace {ns}")),
        "{down}"
    );
    assert!(
        labelled(&env).is_empty(),
        "objects left: {:?}",
        labelled(&env)
    );
    assert!(!namespace_exists(&ns), "namespace {ns} is still there");
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_rollout_failures_are_reported_with_reason() {
    let (t, env) = env_for("fail");
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
    - name: missing
      image: devenv.test/does-not-exist:1
    - name: crash
      image: {BUSYBOX}
      command: "echo connecting to the database; echo giving up >&2; exit 3"
      # Never ready (nothing listens): without a probe a pod counts as ready while it
      # runs, and a container that exits a moment later could be reported ready first.
      readiness: {{ path: /, port: 8080 }}
"#
    ));
    let started = std::time::Instant::now();
    let up = t.devenv(&["up", "--keep-going"]);
    assert_eq!(up.code, Some(1), "{up}");
    // Fast: both fail well before any readiness timeout.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        up.stderr.contains("ErrImagePull") || up.stderr.contains("ImagePullBackOff"),
        "{up}"
    );
    assert!(
        up.stderr.contains("container crash exited with code 3"),
        "{up}"
    );
    assert!(
        up.stderr.contains("giving up"),
        "last lines of the crashed container: {up}"
    );
    let st = t.status_json();
    let msg = |n: &str| {
        st["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .map(|s| {
                (
                    s["state"].as_str().unwrap_or("").to_owned(),
                    s["message"].to_string(),
                )
            })
            .unwrap()
    };
    assert_eq!(msg("missing").0, "failed");
    assert_eq!(msg("crash").0, "failed");
    t.devenv_ok(&["down"]);
    assert!(labelled(&env).is_empty(), "left: {:?}", labelled(&env));
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_invalid_manifest_is_located_and_nothing_is_applied() {
    let (t, env) = env_for("badman");
    std::fs::create_dir_all(t.project.join("k8s")).unwrap();
    std::fs::write(
        t.project.join("k8s/app.yaml"),
        format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: good-config
data: {{ a: b }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
spec:
  selector:
    matchLabels: {{ app: broken }}
  template:
    metadata:
      labels: {{ app: broken }}
    spec:
      containers:
        - name: broken
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "sleep 1000"]
          image: {BUSYBOX}
          ports:
            - containerPort: 99999
"#
        ),
    )
    .unwrap();
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
    - name: platform
      manifests: ./k8s
"#
    ));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        up.stderr.contains("k8s/app.yaml:7 (document 2)"),
        "located: {up}"
    );
    assert!(up.stderr.contains("Deployment broken"), "{up}");
    assert!(
        up.stderr.contains("containerPort"),
        "the API server's message: {up}"
    );
    assert!(up.stderr.contains("nothing applied"), "{up}");
    assert!(
        labelled(&env).is_empty(),
        "applied anyway: {:?}",
        labelled(&env)
    );
    t.devenv_ok(&["down"]);
}
