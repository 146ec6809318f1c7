//! More of the kubernetes runtime against the real test cluster (tests/cluster): a
//! local helm chart installed and uninstalled through the helm CLI, RBAC denials and
//! rejected credentials as one line, `devenv restart` as a rollout restart and
//! re-attaching by itself (logs, forward) after the daemon was killed, and secrets, persistent volumes, resources
//! and replicas of an image service.
//!
//! Needs KUBECONFIG pointing at the test cluster (and helm for the chart test, from
//! scripts/install-test-tools.sh); run with `--ignored`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use devenv_e2e::kube::{env_for, kc, kc_try, kubeconfig, labelled, namespace_exists};
use devenv_e2e::{find_helm, wait_until, TestEnv};
use serde_json::Value;

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";

/// Names of the pods matching `selector` that are not being deleted.
fn live_pods(ns: &str, selector: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&kc(&[
        "get", "pods", "-n", ns, "-l", selector, "-o", "json",
    ]))
    .expect("kubectl get pods -o json");
    let mut names: Vec<String> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The entry of `name` in `devenv status --json`.
fn service(t: &TestEnv, name: &str) -> Value {
    let st = t.status_json();
    st["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_else(|| panic!("{name} is not in status: {st}"))
}

/// PATH for devenv: the host's, with or without the directory holding helm.
fn path_with_helm(helm: &Path) -> String {
    let dir = helm.parent().expect("helm has a directory");
    let host = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&host));
    std::env::join_paths(dirs)
        .expect("join PATH")
        .to_string_lossy()
        .into_owned()
}

fn path_without_helm() -> String {
    let host = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&host).filter(|d| !d.join("helm").exists());
    std::env::join_paths(dirs)
        .expect("join PATH")
        .to_string_lossy()
        .into_owned()
}

fn helm(helm: &Path, args: &[&str]) -> Output {
    Command::new(helm)
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .output()
        .expect("run helm")
}

const CHART_YAML: &str = r#"apiVersion: v2
name: demo
description: devenv e2e chart
type: application
version: 0.1.0
"#;

const CHART_VALUES: &str = r#"replicas: 1
tier: default
greeting: hello
image: busybox
"#;

const CHART_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-demo
  labels:
    app: {{ .Release.Name }}-demo
    tier: {{ .Values.tier | quote }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app: {{ .Release.Name }}-demo
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}-demo
        tier: {{ .Values.tier | quote }}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: demo
          image: {{ .Values.image }}
          imagePullPolicy: IfNotPresent
          env:
            - name: GREETING
              value: {{ .Values.greeting | quote }}
          command: ["sh", "-c", "echo chart says $GREETING from $(hostname); exec sleep 100000"]
          readinessProbe:
            exec: { command: ["true"] }
            initialDelaySeconds: 2
            periodSeconds: 1
"#;

fn write_chart(project: &Path) {
    let dir = project.join("charts/demo");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("Chart.yaml"), CHART_YAML).unwrap();
    std::fs::write(dir.join("values.yaml"), CHART_VALUES).unwrap();
    std::fs::write(dir.join("templates/deployment.yaml"), CHART_DEPLOYMENT).unwrap();
}

fn chart_config(env: &str) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
    - name: web
      chart: ./charts/demo
      values:
        replicas: 2
        tier: backend
        greeting: hi-from-values
        image: {BUSYBOX}
"#
    )
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_chart_service_installs_and_uninstalls() {
    let helm_bin = find_helm().unwrap_or_else(|e| panic!("{e}"));
    let (mut t, env) = env_for("chart");
    let ns = format!("devenv-{env}");
    t.set_var("PATH", path_with_helm(&helm_bin));
    write_chart(&t.project);
    t.write_config(&chart_config(&env));

    let started = Instant::now();
    let up = t.devenv(&["up"]);
    let took = started.elapsed();
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");
    eprintln!("chart: up -> ready in {took:?}");

    // Ready means rolled out: both pods of the chart's Deployment are ready the
    // moment `up` returns (helm itself was not asked to wait).
    let web = service(&t, "web");
    assert_eq!(web["state"], "ready", "{web}");
    assert!(
        web["message"].as_str().unwrap_or("").contains("web-demo"),
        "the rollout of the chart's Deployment gates readiness: {web}"
    );
    let ready = kc(&[
        "get",
        "deployment",
        "web-demo",
        "-n",
        &ns,
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    assert_eq!(ready, "2", "ready replicas when up returned");

    // The values made it into the Deployment.
    let get = |path: &str| {
        kc(&[
            "get",
            "deployment",
            "web-demo",
            "-n",
            &ns,
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    assert_eq!(get("{.spec.replicas}"), "2");
    assert_eq!(get("{.metadata.labels.tier}"), "backend");
    assert_eq!(
        get("{.spec.template.spec.containers[0].env[?(@.name=='GREETING')].value}"),
        "hi-from-values"
    );
    assert_eq!(get("{.spec.template.spec.containers[0].image}"), BUSYBOX);

    // The release is helm's, in the environment's namespace.
    let list = helm(&helm_bin, &["list", "-n", &ns, "-q"]);
    assert!(list.status.success(), "{list:?}");
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "web");

    // Pod output reaches `devenv logs`, from both pods.
    let pods = live_pods(&ns, "app=web-demo");
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(
        wait_until(Duration::from_secs(30), || {
            let logs = t.devenv_ok(&["logs", "web", "--tail", "200"]).stdout;
            pods.iter()
                .all(|p| logs.contains(&format!("chart says hi-from-values from {p}")))
        }),
        "logs lack the pods' output ({pods:?}):\n{}",
        t.devenv(&["logs", "web", "--tail", "200"]).stdout
    );

    // Down without helm while the release exists: it says so and keeps everything.
    t.set_var("PATH", path_without_helm());
    let down = t.devenv(&["down"]);
    assert_eq!(down.code, Some(1), "{down}");
    assert!(down.stderr.contains("helm is not installed"), "{down}");
    assert!(
        namespace_exists(&ns),
        "down without helm removed the namespace"
    );
    let list = helm(&helm_bin, &["list", "-n", &ns, "-q"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "web");
    t.set_var("PATH", path_with_helm(&helm_bin));

    // Down uninstalls the release; its objects and the namespace go.
    let started = Instant::now();
    let down = t.devenv_ok(&["down"]);
    eprintln!("chart: down in {:?}", started.elapsed());
    assert!(
        down.stdout.contains(&format!("removed namespace {ns}")),
        "{down}"
    );
    let list = helm(&helm_bin, &["list", "-n", &ns, "-q", "--all"]);
    assert!(list.status.success(), "{list:?}");
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).trim(),
        "",
        "release left after down"
    );
    let deploy = kc_try(&["get", "deployment", "web-demo", "-n", &ns]);
    assert!(
        !deploy.status.success(),
        "the chart's Deployment is still there"
    );
    assert!(!namespace_exists(&ns), "namespace {ns} is still there");
    assert!(labelled(&env).is_empty(), "left: {:?}", labelled(&env));

    // Without helm on PATH: one line saying so, with the hint.
    let (mut t2, env2) = env_for("nohelm");
    let ns2 = format!("devenv-{env2}");
    t2.set_var("PATH", path_without_helm());
    write_chart(&t2.project);
    t2.write_config(&chart_config(&env2));
    let up = t2.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    let line = up
        .stderr
        .lines()
        .find(|l| l.contains("helm is not installed"))
        .unwrap_or_else(|| panic!("no `helm is not installed` line\n{up}"));
    assert!(
        line.contains("hint: install helm 3") && line.contains("on PATH"),
        "{line}"
    );
    assert_eq!(service(&t2, "web")["state"], "failed");
    eprintln!("chart: {line}");
    // Nothing was installed, so down needs no helm: it removes the namespace.
    let down = t2.devenv(&["down"]);
    assert_eq!(
        down.code,
        Some(0),
        "down without helm and without a release\n{down}"
    );
    assert!(
        down.stdout.contains(&format!("removed namespace {ns2}")),
        "{down}"
    );
    assert!(!namespace_exists(&ns2), "namespace {ns2} is still there");
}

/// A namespace of the test's own, deleted when the test ends (even by panic).
struct Scratch(String);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = kc_try(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

fn token_kubeconfig(dir: &Path, file: &str, token: &str) -> PathBuf {
    let server = kc(&[
        "config",
        "view",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let ca = kc(&[
        "config",
        "view",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]);
    assert!(
        server.starts_with("https://") && !ca.is_empty(),
        "admin kubeconfig lacks server/CA data"
    );
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
contexts:
- name: limited
  context: {{ cluster: test, user: limited }}
current-context: limited
users:
- name: limited
  user:
    token: {token}
"#
        ),
    )
    .unwrap();
    path
}

fn image_config(env: &str) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
    - name: web
      image: {BUSYBOX}
      command: "sleep 100000"
"#
    )
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_rbac_denial_and_bad_credentials_are_one_line() {
    let pid = std::process::id();
    let scratch = Scratch(format!("devenv-e2e-rbac-{pid}"));
    kc(&["create", "namespace", &scratch.0]);
    kc(&["create", "serviceaccount", "nobody", "-n", &scratch.0]);
    let token = kc(&[
        "create",
        "token",
        "nobody",
        "-n",
        &scratch.0,
        "--duration",
        "10m",
    ])
    .trim()
    .to_owned();
    assert!(token.len() > 20, "token: {token}");

    // A valid identity without permissions: forbidden, said in one line.
    let (mut t, env) = env_for("rbac");
    let ns = format!("devenv-{env}");
    let kcfg = token_kubeconfig(t.root(), "nobody.conf", &token);
    t.set_var("KUBECONFIG", kcfg.display());
    t.write_config(&image_config(&env));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    let denied: Vec<&str> = up
        .stderr
        .lines()
        .filter(|l| l.contains("forbidden: cannot"))
        .collect();
    assert_eq!(denied.len(), 1, "one line of denial:\n{up}");
    let line = denied[0];
    eprintln!("rbac: {line}");
    assert!(line.contains("cannot"), "the API server's reason: {line}");
    assert!(
        line.contains("namespaces") || line.contains("deployments"),
        "{line}"
    );
    assert!(
        line.contains("the Role needs verb"),
        "names the missing permission: {line}"
    );
    assert!(
        line.contains("hint: ask a cluster admin to add it to your Role"),
        "{line}"
    );
    assert!(
        !line.contains("Caused by") && !line.contains("hyper"),
        "{line}"
    );
    let st = t.devenv_ok(&["status", "--json"]).stdout;
    let logs = t.devenv_ok(&["logs", "--tail", "200"]).stdout;
    for (what, text) in [
        ("up stdout", &up.stdout),
        ("up stderr", &up.stderr),
        ("status", &st),
        ("logs", &logs),
    ] {
        assert!(!text.contains(&token), "the token leaked into {what}");
    }
    assert!(!namespace_exists(&ns), "a denied up created namespace {ns}");

    // A token the API server does not know: rejected credentials.
    let (mut t2, env2) = env_for("badtoken");
    let garbage = format!("garbage-token-{pid}-0123456789abcdef");
    let kcfg = token_kubeconfig(t2.root(), "garbage.conf", &garbage);
    t2.set_var("KUBECONFIG", kcfg.display());
    t2.write_config(&image_config(&env2));
    let up = t2.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    let rejected: Vec<&str> = up
        .stderr
        .lines()
        .filter(|l| l.contains("rejected the credentials (401 Unauthorized)"))
        .collect();
    assert_eq!(rejected.len(), 1, "one line:\n{up}");
    eprintln!("rbac: {}", rejected[0]);
    assert!(
        rejected[0].contains("context `limited`")
            && rejected[0].contains("hint: they may have expired"),
        "{}",
        rejected[0]
    );
    assert!(
        !up.stdout.contains(&garbage) && !up.stderr.contains(&garbage),
        "the token leaked: {up}"
    );
    assert!(!namespace_exists(&format!("devenv-{env2}")));
    drop(scratch);
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_restart_and_daemon_crash_recovery() {
    let (t, env) = env_for("restart");
    let fwd = devenv_e2e::free_ports(1)[0];
    let ns = format!("devenv-{env}");
    let sel = format!("devenv.dev/environment={env},devenv.dev/service=web");
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
    - name: web
      image: {BUSYBOX}
      command: "mkdir -p /www && hostname > /www/index.html && echo web serving && exec httpd -f -v -p 8080 -h /www"
      ports: [8080]
      forward: ["{fwd}:8080"]
      readiness: {{ path: /, port: 8080 }}
"#
    ));
    let started = Instant::now();
    t.devenv_ok(&["up"]);
    eprintln!("restart: up -> ready in {:?}", started.elapsed());
    let served = |pod: &str| {
        devenv_e2e::http_get(fwd, "/").is_some_and(|r| r.status == 200 && r.body.trim() == pod)
    };
    let first = live_pods(&ns, &sel);
    assert_eq!(first.len(), 1, "{first:?}");
    let first = first[0].clone();
    let before = service(&t, "web");
    assert_eq!(before["state"], "ready", "{before}");
    let restarts = before["restarts"].as_u64().expect("restarts");

    // Restart: a rollout restart; returns once the new pod is ready.
    let started = Instant::now();
    t.devenv_ok(&["restart", "web"]);
    let took = started.elapsed();
    eprintln!("restart: devenv restart web in {took:?}");
    let after = service(&t, "web");
    assert_eq!(after["state"], "ready", "{after}");
    assert_eq!(after["restarts"].as_u64(), Some(restarts + 1), "{after}");
    let second = live_pods(&ns, &sel);
    assert_eq!(second.len(), 1, "{second:?}");
    let second = second[0].clone();
    assert_ne!(second, first, "restart kept the old pod");
    let ready = kc(&[
        "get",
        "pod",
        &second,
        "-n",
        &ns,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
    ]);
    assert_eq!(ready, "True", "restart returned before {second} was ready");
    let annotated = kc(&[
        "get",
        "deployment",
        "web",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.template.metadata.annotations}",
    ]);
    assert!(annotated.contains("devenv.dev/restartedAt"), "{annotated}");

    assert!(
        wait_until(Duration::from_secs(20), || served(&second)),
        "the forward does not serve {second} before the crash"
    );

    // The daemon dies; the next one (started by any command) re-attaches by itself:
    // the same pod, its logs and its forward, with no `up`.
    let dead = t.kill_daemon_hard();
    let started = Instant::now();
    let st = service(&t, "web");
    assert_ne!(t.daemon_pid(), dead);
    assert!(
        wait_until(Duration::from_secs(60), || served(&second)),
        "the forward does not serve again after the crash: {st}\n{}",
        t.devenv(&["status"]).stdout
    );
    eprintln!(
        "restart: forward serving again {:?} after the new daemon's first command",
        started.elapsed()
    );
    // The status message says so until the rollout watch reports a change; the log
    // line stays.
    let mut st = Value::Null;
    assert!(
        wait_until(Duration::from_secs(20), || {
            st = service(&t, "web");
            st["state"] == "ready"
                && t.devenv_ok(&["logs", "web", "--tail", "50"])
                    .stdout
                    .contains("recovered after a daemon restart")
        }),
        "web is not ready with a recovery line in its log: {st}"
    );
    assert_eq!(
        live_pods(&ns, &sel),
        vec![second.clone()],
        "re-attaching after the crash replaced the pod"
    );
    // `up` now has nothing to do.
    t.devenv_ok(&["up"]);
    assert_eq!(live_pods(&ns, &sel), vec![second.clone()]);
    // And it follows the pod's logs again.
    let served = kc(&[
        "exec",
        "-n",
        &ns,
        &second,
        "--",
        "wget",
        "-qO-",
        "http://127.0.0.1:8080/",
    ]);
    assert_eq!(served.trim(), second);
    assert!(
        wait_until(Duration::from_secs(20), || t
            .devenv_ok(&["logs", "web", "--tail", "200"])
            .stdout
            .contains("web serving")),
        "no pod logs after re-attaching:\n{}",
        t.devenv(&["logs", "web", "--tail", "200"]).stdout
    );

    t.devenv_ok(&["down"]);
    assert!(labelled(&env).is_empty(), "left: {:?}", labelled(&env));
    assert!(!namespace_exists(&ns), "namespace {ns} is still there");
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_secrets_volumes_resources() {
    let (mut t, env) = env_for("secvol");
    let ns = format!("devenv-{env}");
    let sel = format!("devenv.dev/environment={env},devenv.dev/service=app");
    t.set_var("SOMEVAR", "abc");
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  secrets:
    - name: app-secret
      data: {{ TOKEN: "s3cr3t-${{SOMEVAR:-x}}" }}
  volumes:
    - {{ name: data, type: persistent, size: 64Mi }}
  services:
    - name: app
      image: {BUSYBOX}
      secrets: [app-secret]
      volumes: ["data:/data"]
      replicas: 2
      resources:
        requests: {{ cpu: 10m, memory: 16Mi }}
        limits: {{ memory: 64Mi }}
      command: 'hostname >> /data/hosts && echo wrote /data/hosts && echo token length $(echo "$TOKEN" | wc -c) && exec sleep 100000'
"#
    ));
    let started = Instant::now();
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");
    eprintln!("secvol: up -> ready in {:?}", started.elapsed());

    // The Secret: labelled, holding the interpolated value.
    let secret_labels = kc(&[
        "get",
        "secret",
        "app-secret",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    let labels: Value = serde_json::from_str(&secret_labels).expect("labels as JSON");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "devenv", "{labels}");
    assert_eq!(labels["devenv.dev/environment"], env.as_str(), "{labels}");
    let value = kc(&[
        "get",
        "secret",
        "app-secret",
        "-n",
        &ns,
        "-o",
        "go-template={{.data.TOKEN | base64decode}}",
    ]);
    assert_eq!(value, "s3cr3t-abc");

    // The claim is bound (its pods run), the Deployment has both replicas ready.
    assert_eq!(
        kc(&[
            "get",
            "pvc",
            "data",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.phase}"
        ]),
        "Bound"
    );
    assert_eq!(
        kc(&[
            "get",
            "pvc",
            "data",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.resources.requests.storage}"
        ]),
        "64Mi"
    );
    let get = |path: &str| {
        kc(&[
            "get",
            "deployment",
            "app",
            "-n",
            &ns,
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    assert_eq!(get("{.spec.replicas}"), "2");
    assert_eq!(
        get("{.status.readyReplicas}"),
        "2",
        "ready when up returned"
    );
    let c = "{.spec.template.spec.containers[0]";
    assert_eq!(get(&format!("{c}.resources.requests.cpu}}")), "10m");
    assert_eq!(get(&format!("{c}.resources.requests.memory}}")), "16Mi");
    assert_eq!(get(&format!("{c}.resources.limits.memory}}")), "64Mi");
    assert_eq!(
        get(&format!("{c}.envFrom[0].secretRef.name}}")),
        "app-secret"
    );
    assert_eq!(
        get("{.spec.template.spec.volumes[?(@.name=='data')].persistentVolumeClaim.claimName}"),
        "data"
    );

    // Both pods wrote to the one volume.
    let pods = live_pods(&ns, &sel);
    assert_eq!(pods.len(), 2, "{pods:?}");
    let mut hosts = String::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            hosts = kc(&["exec", "-n", &ns, &pods[0], "--", "cat", "/data/hosts"]);
            pods.iter().all(|p| hosts.lines().any(|l| l == p))
        }),
        "/data/hosts: {hosts:?}, pods {pods:?}"
    );

    // The secret reaches the container but never devenv's output.
    let mut logs = String::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            logs = t.devenv_ok(&["logs", "app", "--tail", "200"]).stdout;
            logs.matches("token length 11").count() >= 2
        }),
        "logs lack both pods' token length:\n{logs}"
    );
    let st = t.devenv_ok(&["status", "--json"]).stdout;
    let all_logs = t.devenv_ok(&["logs", "--tail", "1000"]).stdout;
    let shown = t.devenv_ok(&["config", "show"]).stdout;
    for (what, text) in [
        ("up stdout", &up.stdout),
        ("up stderr", &up.stderr),
        ("status --json", &st),
        ("logs", &all_logs),
        ("config show", &shown),
    ] {
        assert!(
            !text.contains("s3cr3t"),
            "the secret leaked into {what}:\n{text}"
        );
    }

    // down --volumes: the claim and the namespace go too.
    let down = t.devenv_ok(&["down", "--volumes"]);
    assert!(
        down.stdout.contains(&format!("removed namespace {ns}")),
        "{down}"
    );
    assert!(labelled(&env).is_empty(), "left: {:?}", labelled(&env));
    assert!(!kc_try(&["get", "pvc", "data", "-n", &ns]).status.success());
    assert!(!namespace_exists(&ns), "namespace {ns} is still there");
}
