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
