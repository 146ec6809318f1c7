//! Writes the converted services as a devenv config: YAML by hand, so the file carries
//! the report and per-service notes as comments, and every string is quoted when plain
//! YAML would read it as something else.

use std::fmt::Write as _;

use super::Note;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cmd {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone, Default)]
pub(super) struct OutBuild {
    pub context: String,
    pub dockerfile: Option<String>,
    pub args: Vec<(String, String)>,
    pub target: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct OutProbe {
    pub command: Cmd,
    pub period: Option<f64>,
    pub failure_threshold: Option<i64>,
    pub timeout: Option<f64>,
}

#[derive(Debug, Clone)]
pub(super) struct OutVolume {
    pub name: String,
    pub kind: &'static str,
    pub size: Option<String>,
}

/// One service as written.
#[derive(Debug, Default)]
pub(super) struct Out {
    pub name: String,
    /// Lines written as comments above the service's keys.
    pub comments: Vec<String>,
    pub preset: Option<&'static str>,
    pub preset_candidate: Option<&'static str>,
    /// `runtime: container`.
    pub container: bool,
    pub image: Option<String>,
    pub build: Option<OutBuild>,
    pub command: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub env_files: Vec<String>,
    pub ports: Vec<u16>,
    pub forward: Vec<String>,
    pub deps: Vec<(String, bool)>,
    pub readiness: Option<OutProbe>,
    pub restart: Option<&'static str>,
    pub oneshot: bool,
    pub volumes: Vec<String>,
    pub profiles: Vec<String>,
}

/// A YAML scalar for `s`: plain when YAML reads it back as this same string, else
/// double-quoted (JSON's escaping is valid YAML).
pub(super) fn q(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./@+-=".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '.' || c == '/')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | ".inf" | ".nan"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).expect("a string serializes")
    }
}

fn flow(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

fn seconds(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

fn cmd(c: &Cmd) -> String {
    match c {
        Cmd::Shell(s) => q(s),
        Cmd::Exec(argv) => flow(argv.iter().map(|a| q(a))),
    }
}

fn comment(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

pub(super) fn config(
    project: &str,
    source: &str,
    services: &[Out],
    volumes: &[OutVolume],
    notes: &[Note],
) -> String {
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# devenv config converted by `devenv init` from {}.",
        comment(source)
    );
    y.push_str(
        "# `devenv validate` checks it, `devenv up` starts it; containers run on the local\n",
    );
    y.push_str(
        "# Docker/Podman engine, on one network where they reach each other by service name.\n",
    );
    if notes.is_empty() {
        y.push_str("# Everything in the compose file was converted.\n");
    } else {
        y.push_str("# Not converted as written (check each):\n");
        for n in notes {
            let _ = writeln!(y, "#   {}", comment(&n.to_string()));
        }
    }
    let _ = write!(
        y,
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: {project}\nspec:\n  services:\n"
    );
    for s in services {
        service(&mut y, s);
    }
    if !volumes.is_empty() {
        y.push_str("  volumes:\n");
        for v in volumes {
            let _ = write!(y, "    - name: {}\n      type: {}\n", v.name, v.kind);
            if let Some(size) = &v.size {
                let _ = writeln!(y, "      size: {}", q(size));
            }
        }
    }
    y
}

fn service(y: &mut String, s: &Out) {
    let _ = writeln!(y, "    - name: {}", s.name);
    for c in &s.comments {
        let _ = writeln!(y, "      # {}", comment(c));
    }
    if let Some(p) = s.preset {
        let _ = writeln!(y, "      type: {p}");
    }
    if s.container {
        y.push_str("      runtime: container\n");
    }
    if let Some(image) = &s.image {
        let _ = writeln!(y, "      image: {}", q(image));
    }
    if let Some(b) = &s.build {
        y.push_str("      build:\n");
        let _ = writeln!(y, "        context: {}", q(&b.context));
        if let Some(d) = &b.dockerfile {
            let _ = writeln!(y, "        dockerfile: {}", q(d));
        }
        if !b.args.is_empty() {
            y.push_str("        args:\n");
            for (k, v) in &b.args {
                let _ = writeln!(y, "          {}: {}", q(k), q(v));
            }
        }
        if let Some(t) = &b.target {
            let _ = writeln!(y, "        target: {}", q(t));
        }
    }
    if let Some(c) = &s.command {
        let _ = writeln!(y, "      command: {}", flow(c.iter().map(|a| q(a))));
    }
    if !s.env.is_empty() {
        y.push_str("      env:\n");
        for (k, v) in &s.env {
            let _ = writeln!(y, "        {}: {}", q(k), q(v));
        }
    }
    if !s.env_files.is_empty() {
        let _ = writeln!(
            y,
            "      envFile: {}",
            flow(s.env_files.iter().map(|f| q(f)))
        );
    }
    if !s.ports.is_empty() {
        let _ = writeln!(
            y,
            "      ports: {}",
            flow(s.ports.iter().map(u16::to_string))
        );
    }
    if !s.forward.is_empty() {
        let _ = writeln!(y, "      forward: {}", flow(s.forward.iter().map(|f| q(f))));
    }
    if !s.deps.is_empty() {
        if s.deps.iter().any(|(_, restart)| *restart) {
            y.push_str("      dependencies:\n");
            for (d, restart) in &s.deps {
                if *restart {
                    let _ = writeln!(y, "        {d}: {{ restart: true }}");
                } else {
                    let _ = writeln!(y, "        {d}: {{}}");
                }
            }
        } else {
            let _ = writeln!(
                y,
                "      dependencies: {}",
                flow(s.deps.iter().map(|(d, _)| d.clone()))
            );
        }
    }
    if let Some(r) = &s.readiness {
        y.push_str("      readiness:\n");
        let _ = writeln!(y, "        exec: {{ command: {} }}", cmd(&r.command));
        if let Some(p) = r.period {
            let _ = writeln!(y, "        periodSeconds: {}", seconds(p));
        }
        if let Some(f) = r.failure_threshold {
            let _ = writeln!(y, "        failureThreshold: {f}");
        }
        if let Some(t) = r.timeout {
            let _ = writeln!(y, "        timeoutSeconds: {}", seconds(t));
        }
    }
    if let Some(r) = s.restart {
        let _ = writeln!(y, "      restart: {r}");
    }
    if s.oneshot {
        y.push_str("      oneshot: true\n");
    }
    if !s.volumes.is_empty() {
        let _ = writeln!(y, "      volumes: {}", flow(s.volumes.iter().map(|v| q(v))));
    }
    if !s.profiles.is_empty() {
        let _ = writeln!(y, "      profiles: {}", flow(s.profiles.iter().cloned()));
    }
}
