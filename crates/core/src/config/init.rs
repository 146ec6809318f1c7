//! `devenv init`: a first config that works as written for the project at hand, so a new
//! user's first `devenv up` succeeds and the file teaches the format by example.

use std::path::Path;

use super::names::to_label;

const GUIDE: &str = "\
# devenv config: `devenv up` starts these services, `devenv validate` checks this file.
# Services run as local processes (`command`) or on Kubernetes (`image`, `chart`,
# `manifests`); `dependencies` order them and `readiness` gates their dependents.
";

// No line continuation here: `\` at a line end would eat the next line's indentation.
const EXAMPLES: &str = "      # restart: on-failure          # never | on-failure | always
      # watch: { paths: [.], ignore: [\"*.log\"], action: restart }
    # - name: cache                   # a preset; runs on Kubernetes when spec.cluster is set
    #   type: redis
";

fn project_name(project_dir: &Path) -> String {
    let dir = std::path::absolute(project_dir).unwrap_or_else(|_| project_dir.to_path_buf());
    let name = dir
        .file_name()
        .map(|n| to_label(&n.to_string_lossy()))
        .unwrap_or_default();
    if name.is_empty() {
        "app".to_owned()
    } else {
        name
    }
}

/// The npm script to run: `dev` when the project has one (the usual watch-mode server),
/// else `npm start`.
fn node_command(project_dir: &Path) -> &'static str {
    let has_dev = std::fs::read_to_string(project_dir.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|pkg| pkg.get("scripts").and_then(|s| s.get("dev")).is_some());
    if has_dev {
        "npm run dev"
    } else {
        "npm start"
    }
}

/// Detects the project type and returns a config for it plus the detected kind (`node`,
/// `rust`, `go`, `python` or `generic`).
pub fn init_template(project_dir: &Path) -> (String, &'static str) {
    let has = |f: &str| project_dir.join(f).is_file();
    let (kind, service) = if has("package.json") {
        (
            "node",
            format!(
                "    - name: app\n      command: {}\n      env: {{ NODE_ENV: development }}\n",
                node_command(project_dir)
            ),
        )
    } else if has("Cargo.toml") {
        (
            "rust",
            "    - name: app\n      command: cargo run\n".to_owned(),
        )
    } else if has("go.mod") {
        (
            "go",
            "    - name: app\n      command: go run .\n".to_owned(),
        )
    } else if has("manage.py") {
        (
            "python",
            "    - name: web\n      command: python3 manage.py runserver 127.0.0.1:8000\n      ports: [8000]\n      readiness: { tcp: { port: 8000 } }\n".to_owned(),
        )
    } else if has("pyproject.toml") || has("requirements.txt") {
        (
            "python",
            "    - name: app\n      command: python3 main.py    # adjust to your entry point\n"
                .to_owned(),
        )
    } else {
        (
            "generic",
            "    # An example: replace it with your own services.\n    - name: web\n      command: python3 -m http.server 8000\n      ports: [8000]\n      readiness: { http: { path: / } }\n".to_owned(),
        )
    };
    let yaml = format!(
        "{GUIDE}apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: {}\nspec:\n  services:\n{service}{EXAMPLES}",
        project_name(project_dir)
    );
    (yaml, kind)
}
