//! Terraform outputs (issue 18 item 2) used by services on the test cluster: a
//! sensitive `${tf.SVC.OUT}` in a kubernetes service's `env` reaches the pod from the
//! Secret `<svc>-tf-outputs` (a `secretKeyRef`, never a value in the Deployment), a
//! plain one as a value; in a chart service's `values` both reach helm over its stdin
//! (no values file, not even a private temp one). Neither value is in anything devenv
//! shows or keeps, and a changed output restarts only the service that uses it.
//! Terraform v1.11 with `terraform_data` and the local backend: no provider download.

use std::path::Path;
use std::time::Duration;

use devenv_e2e::kube::{env_for, kc, kc_try};
use devenv_e2e::{files_containing, find_helm, wait_until, TestEnv};
use serde_json::Value;

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";

const MODULE: &str = r#"
variable "seed" { type = string }
resource "terraform_data" "thing" {
  input = var.seed
}
output "plain" { value = "plain-${terraform_data.thing.output}" }
output "token" {
  value     = "tok-${var.seed}"
  sensitive = true
}
"#;

/// The terraform service `infra` (./infra, applied on `up`) with `seed`.
fn infra(t: &TestEnv, seed: &str) -> String {
    let dir = t.project.join("infra");
    std::fs::create_dir_all(&dir).expect("mkdir infra");
    std::fs::write(dir.join("main.tf"), MODULE).expect("write main.tf");
    format!(
        r#"    - name: infra
      terraform:
        dir: ./infra
        vars: {{ seed: {seed} }}
        autoApply: true
"#
    )
}

/// Names and uids of the live pods of `service` (not being deleted).
fn pods_of(ns: &str, service: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&kc(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        &format!("devenv.dev/service={service}"),
        "-o",
        "json",
    ]))
    .expect("kubectl get pods -o json");
    let mut names: Vec<String> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// `$var` as each of `vars` in one running pod of `target` (`deploy/NAME`), or None
/// while it can't be reached.
fn in_pod(ns: &str, target: &str, vars: &[&str]) -> Option<Vec<String>> {
    let mut got = Vec::new();
    for var in vars {
        let echo = format!("echo \"${var}\"");
        let out = kc_try(&["exec", "-n", ns, target, "--", "sh", "-c", &echo]);
        if !out.status.success() {
            return None;
        }
        got.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    Some(got)
}

/// What devenv shows (up's output, status, logs, config show) and keeps (the data
/// dir) holds none of `secrets`.
fn assert_not_shown(t: &TestEnv, up: &str, secrets: &[&str]) {
    let mut shown = vec![("up".to_owned(), up.to_owned())];
    for args in [
        &["status", "--json"][..],
        &["status"],
        &["logs", "--tail", "1000"],
        &["config", "show"],
    ] {
        shown.push((args.join(" "), t.devenv_ok(args).combined()));
    }
    for (what, text) in &shown {
        for s in secrets {
            assert!(!text.contains(s), "{s} is shown by `{what}`:\n{text}");
        }
    }
    for s in secrets {
        let leaked = files_containing(&t.data_dir, s.as_bytes());
        assert!(leaked.is_empty(), "{s} is stored in {leaked:?}");
    }
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_terraform_outputs_reach_a_pod_the_sensitive_one_from_a_secret() {
    let (t, env) = env_for("tfkube");
    let ns = format!("devenv-{env}");
    let config = |seed: &str| {
        format!(
            r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
{infra}    - name: app
      image: {BUSYBOX}
      command: 'echo started && exec sleep 100000'
      env: {{ PLAIN: "${{tf.infra.plain}}", TOKEN: "${{tf.infra.token}}" }}
      dependencies: [infra]
    - name: other
      image: {BUSYBOX}
      command: 'echo other && exec sleep 100000'
"#,
            infra = infra(&t, seed)
        )
    };
    let seed1 = format!("one-{}", t.id);
    t.write_config(&config(&seed1));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");
    let (plain1, token1) = (format!("plain-{seed1}"), format!("tok-{seed1}"));
    assert_eq!(
        in_pod(&ns, "deploy/app", &["PLAIN", "TOKEN"]),
        Some(vec![plain1.clone(), token1.clone()]),
        "the pod's environment"
    );

    // The sensitive value comes from the Secret; the plain one is a value.
    let deployment: Value =
        serde_json::from_str(&kc(&["get", "deployment", "app", "-n", &ns, "-o", "json"]))
            .expect("deployment json");
    let env_list = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let var = |name: &str| {
        env_list
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not in the Deployment's env: {env_list:?}"))
    };
    assert_eq!(var("PLAIN")["value"], plain1.as_str());
    let token = var("TOKEN");
    assert!(token.get("value").is_none(), "TOKEN has a value: {token}");
    assert_eq!(
        token["valueFrom"]["secretKeyRef"]["name"], "app-tf-outputs",
        "{token}"
    );
    assert!(
        !deployment.to_string().contains(&token1),
        "the sensitive output is in the Deployment"
    );
    let keys = kc(&[
        "get",
        "secret",
        "app-tf-outputs",
        "-n",
        &ns,
        "-o",
        "jsonpath={.data}",
    ]);
    let keys: Value = serde_json::from_str(&keys).expect("the Secret's data");
    assert_eq!(
        keys.as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["TOKEN".to_owned()]),
        "the Secret holds the sensitive output, and only it"
    );
    assert_not_shown(&t, &up.combined(), &[&token1]);

    // A changed output restarts the user, and only it.
    let (app_before, other_before) = (pods_of(&ns, "app"), pods_of(&ns, "other"));
    assert_eq!(app_before.len(), 1, "{app_before:?}");
    let seed2 = format!("two-{}", t.id);
    t.write_config(&config(&seed2));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up after the change\n{up}");
    let (plain2, token2) = (format!("plain-{seed2}"), format!("tok-{seed2}"));
    let want = Some(vec![plain2, token2.clone()]);
    assert!(
        wait_until(Duration::from_secs(120), || {
            in_pod(&ns, "deploy/app", &["PLAIN", "TOKEN"]) == want && pods_of(&ns, "app").len() == 1
        }),
        "the new outputs did not reach the pod: {:?}",
        in_pod(&ns, "deploy/app", &["PLAIN", "TOKEN"])
    );
    assert_ne!(pods_of(&ns, "app"), app_before, "app was not restarted");
    assert_eq!(
        pods_of(&ns, "other"),
        other_before,
        "a service that uses no output was restarted"
    );
    assert_not_shown(&t, &up.combined(), &[&token1, &token2]);

    t.devenv_ok(&["down"]);
}

const CHART_YAML: &str = r#"apiVersion: v2
name: tfdemo
version: 0.1.0
"#;

/// The chart puts the sensitive value into a Secret of its own and the plain one into
/// the pod's env.
const CHART_TEMPLATE: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-creds
stringData:
  token: {{ .Values.token | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-demo
spec:
  replicas: 1
  selector:
    matchLabels: { app: {{ .Release.Name }}-demo }
  template:
    metadata:
      labels: { app: {{ .Release.Name }}-demo }
      annotations: { tokenRevision: {{ .Values.token | sha256sum | quote }} }
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: demo
          image: {{ .Values.image }}
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", "echo chart up; exec sleep 100000"]
          env:
            - name: PLAIN
              value: {{ .Values.plain | quote }}
            - name: TOKEN
              valueFrom: { secretKeyRef: { name: {{ .Release.Name }}-creds, key: token } }
"#;

fn write_chart(project: &Path) {
    let dir = project.join("charts/tfdemo");
    std::fs::create_dir_all(dir.join("templates")).expect("mkdir chart");
    std::fs::write(dir.join("Chart.yaml"), CHART_YAML).expect("write Chart.yaml");
    std::fs::write(dir.join("values.yaml"), "image: busybox\n").expect("write values");
    std::fs::write(dir.join("templates/all.yaml"), CHART_TEMPLATE).expect("write template");
}

#[test]
#[ignore = "needs the test cluster and helm (tests/cluster/test.sh runs it)"]
fn k8s_terraform_outputs_reach_helm_values_over_stdin() {
    let helm = find_helm().unwrap_or_else(|e| panic!("helm is needed: {e}"));
    let (mut t, env) = env_for("tfhelm");
    let ns = format!("devenv-{env}");
    let dir = helm.parent().expect("helm has a directory").to_path_buf();
    let host = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&host)))
        .expect("join PATH");
    t.set_var("PATH", path.to_string_lossy());
    write_chart(&t.project);
    let config = |seed: &str| {
        format!(
            r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  services:
{infra}    - name: web
      chart: ./charts/tfdemo
      values:
        image: {BUSYBOX}
        plain: "${{tf.infra.plain}}"
        token: "${{tf.infra.token}}"
      dependencies: [infra]
"#,
            infra = infra(&t, seed)
        )
    };
    let seed1 = format!("one-{}", t.id);
    t.write_config(&config(&seed1));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");
    let (plain1, token1) = (format!("plain-{seed1}"), format!("tok-{seed1}"));
    assert!(
        wait_until(Duration::from_secs(120), || in_pod(
            &ns,
            "deploy/web-demo",
            &["PLAIN", "TOKEN"]
        ) == Some(vec![
            plain1.clone(),
            token1.clone()
        ])),
        "the chart's pod did not get the outputs: {:?}",
        in_pod(&ns, "deploy/web-demo", &["PLAIN", "TOKEN"])
    );
    assert_not_shown(&t, &up.combined(), &[&token1]);

    // A new output upgrades the release with the new values.
    let seed2 = format!("two-{}", t.id);
    t.write_config(&config(&seed2));
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up after the change\n{up}");
    let want = Some(vec![format!("plain-{seed2}"), format!("tok-{seed2}")]);
    assert!(
        wait_until(Duration::from_secs(120), || in_pod(
            &ns,
            "deploy/web-demo",
            &["PLAIN", "TOKEN"]
        ) == want),
        "the release was not upgraded with the new outputs: {:?}",
        in_pod(&ns, "deploy/web-demo", &["PLAIN", "TOKEN"])
    );
    assert_not_shown(&t, &up.combined(), &[&token1, &format!("tok-{seed2}")]);

    t.devenv_ok(&["down"]);
}
