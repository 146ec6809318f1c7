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

/// A small project file's text (package.json, pyproject.toml, requirements.txt), read
/// within the config bounds; None when absent or unreadable.
fn small_text(dir: &Path, name: &str) -> Option<String> {
    super::limits::read_text(&dir.join(name)).ok()
}

/// The package manager of a node project: its lockfile, else `packageManager`.
fn node_manager(dir: &Path, pkg: &serde_json::Value) -> &'static str {
    let has = |f: &str| dir.join(f).is_file();
    if has("pnpm-lock.yaml") {
        "pnpm"
    } else if has("yarn.lock") {
        "yarn"
    } else if has("bun.lockb") || has("bun.lock") {
        "bun"
    } else if has("package-lock.json") {
        "npm"
    } else {
        match pkg.get("packageManager").and_then(|m| m.as_str()) {
            Some(m) if m.starts_with("pnpm") => "pnpm",
            Some(m) if m.starts_with("yarn") => "yarn",
            Some(m) if m.starts_with("bun") => "bun",
            _ => "npm",
        }
    }
}

/// The port a dev script names (`--port 4000`, `-p 4000`, `PORT=4000`).
fn port_in(script: &str) -> Option<u16> {
    let words: Vec<&str> = script.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let value = if let Some(v) = w
            .strip_prefix("--port=")
            .or_else(|| w.strip_prefix("PORT="))
        {
            Some(v)
        } else if matches!(*w, "--port" | "-p") {
            words.get(i + 1).copied()
        } else {
            None
        };
        if let Some(p) = value.and_then(|v| v.parse::<u16>().ok()).filter(|p| *p > 0) {
            return Some(p);
        }
    }
    None
}

/// The dev server's default port of the framework a package depends on.
fn framework_port(pkg: &serde_json::Value) -> Option<u16> {
    let has = |name: &str| {
        ["dependencies", "devDependencies"]
            .iter()
            .any(|k| pkg.get(k).and_then(|d| d.get(name)).is_some())
    };
    [
        ("next", 3000),
        ("nuxt", 3000),
        ("react-scripts", 3000),
        ("@angular/core", 4200),
        ("astro", 4321),
        ("gatsby", 8000),
        ("vite", 5173),
    ]
    .into_iter()
    .find(|(name, _)| has(name))
    .map(|(_, port)| port)
}

/// A node project's service keys: the `dev` script (else `start`) run by its package
/// manager, and the dev server's port when the script or the framework tells it.
fn node_keys(dir: &Path) -> String {
    let pkg = small_text(dir, "package.json")
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .unwrap_or_default();
    let pm = node_manager(dir, &pkg);
    let scripts = pkg.get("scripts");
    let script = ["dev", "start"].into_iter().find_map(|s| {
        scripts
            .and_then(|x| x.get(s))
            .and_then(|v| v.as_str())
            .map(|body| (s, body))
    });
    let command = match (pm, script) {
        ("npm", Some(("start", _)) | None) => "npm start".to_owned(),
        ("npm", Some((s, _))) => format!("npm run {s}"),
        ("yarn", Some((s, _))) => format!("yarn {s}"),
        ("yarn", None) => "yarn start".to_owned(),
        (pm, Some((s, _))) => format!("{pm} run {s}"),
        (pm, None) => format!("{pm} run start"),
    };
    let port = script
        .and_then(|(_, body)| port_in(body))
        .or_else(|| framework_port(&pkg));
    let mut keys = format!(
        "      # `{pm} install` first: the dev server runs from node_modules
      command: {command}
      env: {{ NODE_ENV: development }}
"
    );
    if let Some(port) = port {
        // `localhost`: dev servers often listen on ::1 only; the probe tries both.
        keys.push_str(&format!(
            "      ports: [{port}]
      readiness: {{ tcp: {{ host: localhost, port: {port} }}, timeoutSeconds: 120 }}
"
        ));
    }
    keys
}

/// A python project's service: (name, keys). The runner follows the lockfile (uv,
/// poetry, else the system's python3 after `pip install`), the command the framework
/// (Django's manage.py, FastAPI with uvicorn, Flask), else the entry script.
fn python_keys(dir: &Path) -> (&'static str, String) {
    let has = |f: &str| dir.join(f).is_file();
    let pyproject = small_text(dir, "pyproject.toml").unwrap_or_default();
    let requirements = small_text(dir, "requirements.txt").unwrap_or_default();
    let deps = format!("{pyproject}\n{requirements}").to_ascii_lowercase();
    let (run, python, setup) = if has("uv.lock") || pyproject.contains("[tool.uv") {
        ("uv run ", "uv run python", "`uv sync` first")
    } else if has("poetry.lock") || pyproject.contains("[tool.poetry") {
        ("poetry run ", "poetry run python", "`poetry install` first")
    } else if has("requirements.txt") {
        (
            "",
            "python3",
            "`pip install -r requirements.txt` first (in a virtualenv on PATH)",
        )
    } else {
        (
            "",
            "python3",
            "`pip install .` first (in a virtualenv on PATH)",
        )
    };
    // A dependency named anywhere in the files (`"fastapi>=0.110"`, `flask = "^3"`,
    // `Django==5.0`).
    let depends_on = |name: &str| {
        deps.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .any(|token| token == name)
    };
    // The module holding the app object: main.py, app.py, app/main.py, src/main.py.
    let module = [
        "main.py",
        "app.py",
        "app/main.py",
        "src/main.py",
        "server.py",
    ]
    .into_iter()
    .find(|f| has(f))
    .map(|f| f.trim_end_matches(".py").replace('/', "."));
    let served = |cmd: String, port: u16| {
        format!(
            "      # {setup}\n      command: {cmd}\n      ports: [{port}]\n      readiness: {{ tcp: {{ port: {port} }} }}\n"
        )
    };
    if has("manage.py") {
        let cmd = format!("{python} manage.py runserver 127.0.0.1:8000");
        return ("web", served(cmd, 8000));
    }
    if let (true, Some(m)) = (depends_on("fastapi"), &module) {
        let cmd = format!("{run}uvicorn {m}:app --reload --host 127.0.0.1 --port 8000");
        return ("api", served(cmd, 8000));
    }
    if let (true, Some(m)) = (depends_on("flask"), &module) {
        let cmd = format!("{run}flask --app {m} run --host 127.0.0.1 --port 5000");
        return ("web", served(cmd, 5000));
    }
    let keys = match &module {
        Some(m) => format!("      # {setup}\n      command: {python} -m {m}\n"),
        None => format!(
            "      # {setup}\n      command: {python} main.py    # adjust to your entry point\n"
        ),
    };
    ("app", keys)
}

/// The kind of project in `dir` and its service: (kind, default service name, the
/// service's keys after `name`, indented by six). None: no known project file.
fn detect(dir: &Path) -> Option<(&'static str, &'static str, String)> {
    let has = |f: &str| dir.join(f).is_file();
    Some(if has("package.json") {
        ("node", "app", node_keys(dir))
    } else if has("Cargo.toml") {
        ("rust", "app", "      command: cargo run\n".to_owned())
    } else if has("go.mod") {
        ("go", "app", "      command: go run .\n".to_owned())
    } else if has("manage.py") || has("pyproject.toml") || has("requirements.txt") {
        let (name, keys) = python_keys(dir);
        ("python", name, keys)
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
        services.push((unique, format!("      workdir: ./{dir}\n{keys}")));
    }
    // A frontend talks to the backend: it starts once the backend is ready.
    let backend = services
        .iter()
        .find(|(n, _)| BACKENDS.contains(&n.as_str()))
        .map(|(n, _)| n.clone());
    services
        .into_iter()
        .map(|(name, keys)| {
            let deps = match &backend {
                Some(b) if FRONTENDS.contains(&name.as_str()) => {
                    format!("      dependencies: [{b}]\n")
                }
                _ => String::new(),
            };
            format!("    - name: {name}\n{keys}{deps}")
        })
        .collect()
}

/// Directory names of a backend, and of a frontend that depends on it.
const BACKENDS: &[&str] = &["backend", "api", "server"];
const FRONTENDS: &[&str] = &["frontend", "web", "client", "ui", "app"];

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
    /// The presets whose server this machine has (see [`compose::Options`]).
    pub local_servers: Vec<super::Preset>,
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
            local_servers: opts.local_servers.clone(),
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
