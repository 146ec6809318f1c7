//! The reference design's example config (examples/reference, with local chart and
//! image names) is accepted by `devenv validate` as it stands, and the keys of its
//! schema reach the checked config (`config show`).

use devenv_e2e::TestEnv;
use serde_json::Value;

#[test]
fn the_reference_example_validates() {
    let env = TestEnv::new();
    env.copy_example("reference");
    let out = env.devenv_ok(&["--json", "validate"]);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("validate --json is not JSON ({e})\n{out}"));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["name"], "my-project", "{v}");
    assert_eq!(
        v["services"],
        serde_json::json!(["database", "api", "frontend"]),
        "{v}"
    );
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");

    let show = env.devenv_ok(&["config", "show"]);
    for key in [
        "version: '1.0'",
        "type: postgresql",
        "type: application",
        "source: ./services/api",
        "storageClass: local-path",
        "type: configmap",
    ] {
        assert!(
            show.stdout.contains(key) || show.stdout.contains(&key.replace('\'', "\"")),
            "`{key}` missing from config show:\n{show}"
        );
    }
}

#[test]
fn a_mistake_in_the_reference_schema_is_located() {
    let env = TestEnv::new();
    let project = env.copy_example("reference").to_path_buf();
    let file = project.join(".devenv/config.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("port: http }", "port: htp }")).unwrap();
    let out = env.devenv(&["validate"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("readiness.http.port")
            && out.stderr.contains("no port named `htp`")
            && out.stderr.contains("did you mean `http`"),
        "{out}"
    );
}

/// PATH for devenv: the host's, with the directory holding helm first.
fn path_with_helm(helm: &std::path::Path) -> String {
    let dir = helm.parent().expect("helm has a directory");
    let host = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&host));
    std::env::join_paths(dirs)
        .expect("join PATH")
        .to_string_lossy()
        .into_owned()
}

/// The example as it stands (its charts, busybox images, volumes, named ports,
/// `networking.ingress`), with only its cluster section pointed at the test cluster
/// (it makes a k3d cluster), a name of this run (its namespace) and a free local port
/// for its forward: validates, comes up with every service ready, and goes down.
#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it) and helm (scripts/install-test-tools.sh)"]
fn k8s_the_reference_example_comes_up_on_the_test_cluster() {
    use devenv_e2e::kube::{env_for, kc};
    use devenv_e2e::{find_helm, free_ports, http_get, wait_until};
    use std::time::Duration;

    let helm = find_helm().unwrap_or_else(|e| panic!("helm is needed for the charts: {e}"));
    let (mut t, env) = env_for("reference");
    t.set_var("PATH", path_with_helm(&helm));
    let project = t.copy_example("reference").to_path_buf();
    let file = project.join(".devenv/config.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    let (head, rest) = text.split_once("  cluster:\n").expect("a cluster section");
    let (_, rest) = rest
        .split_once("\n  services:\n")
        .expect("services after it");
    let port = free_ports(1)[0];
    let text = format!("{head}  cluster: {{ provider: kubeconfig }}\n\n  services:\n{rest}")
        .replacen("  name: my-project\n", &format!("  name: {env}\n"), 1)
        .replacen("\"3000:http\"", &format!("\"{port}:http\""), 1);
    std::fs::write(&file, &text).unwrap();

    let v = t.devenv_ok(&["--json", "validate"]);
    let valid: Value = serde_json::from_str(&v.stdout).unwrap_or_else(|e| panic!("{e}\n{v}"));
    assert_eq!(valid["valid"], true, "{v}\n{text}");
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}\n{text}");

    let status = t.status_json();
    assert_eq!(status["version"], "1.0", "{status}");
    for name in ["database", "api", "frontend"] {
        let s = status["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {status}"));
        assert_eq!(s["state"], "ready", "{name}: {s}");
    }
    let frontend = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "frontend")
        .unwrap();
    assert_eq!(
        frontend["url"],
        format!("http://frontend.{env}.localhost/").as_str(),
        "{frontend}"
    );
    // The configmap volume's page, through the forward to the named port.
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            last = http_get(port, "/").map(|r| (r.status, r.body));
            last.as_ref().is_some_and(|(s, b)| {
                *s == 200 && b.contains("served from the shared-config volume")
            })
        }),
        "frontend through its forward: {last:?}"
    );
    let ns = format!("devenv-{env}");
    let host = kc(&[
        "get",
        "ingress",
        "frontend",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.ingressClassName} {.spec.rules[0].host}",
    ]);
    assert_eq!(host, format!("traefik frontend.{env}.localhost"));
    let down = t.devenv(&["down"]);
    assert_eq!(down.code, Some(0), "{down}");
}
