//! `devenv init`: a first config that works as written for the project at hand, so a new
//! user's first `devenv up` succeeds and the file teaches the format by example.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::compose;
use super::ConfigError;

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

pub(super) fn project_name(project_dir: &Path) -> String {
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

/// The kind of project in `dir` and its service: (kind, default service name, the
/// service's keys after `name`, indented by six). None: no known project file.
fn detect(dir: &Path) -> Option<(&'static str, &'static str, String)> {
    let has = |f: &str| dir.join(f).is_file();
    Some(if has("package.json") {
        (
            "node",
            "app",
            format!(
                "      command: {}\n      env: {{ NODE_ENV: development }}\n",
                node_command(dir)
            ),
        )
    } else if has("Cargo.toml") {
        ("rust", "app", "      command: cargo run\n".to_owned())
    } else if has("go.mod") {
        ("go", "app", "      command: go run .\n".to_owned())
    } else if has("manage.py") {
        (
            "python",
            "web",
            "      command: python3 manage.py runserver 127.0.0.1:8000\n      ports: [8000]\n      readiness: { tcp: { port: 8000 } }\n".to_owned(),
        )
    } else if has("pyproject.toml") || has("requirements.txt") {
        (
            "python",
            "app",
            "      command: python3 main.py    # adjust to your entry point\n".to_owned(),
        )
    } else {
        return None;
    })
}

/// Directories never taken for a service's project.
const NOT_PROJECTS: &[&str] = &["node_modules", "target", "vendor", "dist", "build", "venv"];

/// One service per immediate subdirectory holding a known project file (a repository
/// with `frontend/` and `backend/`), named after the directory, in name order.
fn detect_subdirectories(project_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(project_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| !n.starts_with('.') && !NOT_PROJECTS.contains(&n.as_str()))
        .collect();
    dirs.sort();
    let mut names = std::collections::BTreeSet::new();
    let mut services = Vec::new();
    for dir in dirs {
        let Some((_, _, keys)) = detect(&project_dir.join(&dir)) else {
            continue;
        };
        let mut name = to_label(&dir);
        if name.is_empty() {
            name = "app".to_owned();
        }
        let mut unique = name.clone();
        let mut n = 2;
        while !names.insert(unique.clone()) {
            unique = format!("{name}-{n}");
            n += 1;
        }
        services.push(format!(
            "    - name: {unique}\n      workdir: ./{dir}\n{keys}"
        ));
    }
    services
}

/// Detects the project type and returns a config for it plus the detected kind (`node`,
/// `rust`, `go`, `python`, `multi-service` (projects in subdirectories, one service
/// each) or `generic`).
pub fn init_template(project_dir: &Path) -> (String, &'static str) {
    let subdirs = detect_subdirectories(project_dir);
    let (kind, service) = if let Some((kind, name, keys)) = detect(project_dir) {
        (kind, format!("    - name: {name}\n{keys}"))
    } else if !subdirs.is_empty() {
        ("multi-service", subdirs.concat())
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

/// What `devenv init` was asked for.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Convert this compose file (else the project's own, when it has one).
    pub from_compose: Option<PathBuf>,
    /// postgres and redis images become presets.
    pub presets: bool,
}

/// The config `devenv init` writes, and what it says about it.
#[derive(Debug, Clone)]
pub struct InitOutcome {
    pub yaml: String,
    /// `compose` or a project kind of [`init_template`].
    pub detected: String,
    /// The compose file converted.
    pub compose_file: Option<PathBuf>,
    /// What the conversion did not carry over, one line each (`compose.yaml:12: ...`).
    pub report: Vec<String>,
    /// Services whose image could be a preset (`--presets`).
    pub preset_candidates: Vec<String>,
}

/// The config for `project_dir`: converted from a compose file when there is one (or
/// `--from-compose`), else from the detected project layout. An unreadable or malformed
/// compose file is a located error, and nothing is written.
pub fn init_project(
    project_dir: &Path,
    opts: &InitOptions,
    process: &BTreeMap<String, String>,
) -> Result<InitOutcome, ConfigError> {
    let file = opts
        .from_compose
        .as_ref()
        .map(|f| project_dir.join(f))
        .or_else(|| compose::find(project_dir));
    let Some(file) = file else {
        let (yaml, detected) = init_template(project_dir);
        return Ok(InitOutcome {
            yaml,
            detected: detected.to_owned(),
            compose_file: None,
            report: Vec::new(),
            preset_candidates: Vec::new(),
        });
    };
    let conv = compose::convert(
        &file,
        project_dir,
        process,
        &compose::Options {
            presets: opts.presets,
        },
    )?;
    Ok(InitOutcome {
        yaml: conv.yaml,
        detected: "compose".to_owned(),
        compose_file: Some(file),
        report: conv.report.iter().map(ToString::to_string).collect(),
        preset_candidates: conv.preset_candidates,
    })
}
