//! Warnings for secrets that would leak sideways: a secret's value written into a command
//! line or a probe URL ends up in a process's argv, which every user on the machine can
//! read in `/proc/PID/cmdline` (and `ps` shows), whatever devenv does with its own output.

use super::index::{child, Index};
use super::show::MIN_SCRUB_LEN;
use super::yaml::{Node, Value};
use super::ConfigError;

/// Keys of a service whose strings become argv (commands) or a URL in argv (probes).
const ARGV_KEYS: [&str; 5] = ["command", "args", "readiness", "watch", "dev"];

/// One warning per string (after interpolation) that holds a secret's value, located at
/// that string. The warning names the secret, never its value.
pub(crate) fn secrets_in_argv(tree: &Node, index: &Index) -> Vec<ConfigError> {
    let secrets = named_secrets(tree);
    if secrets.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let spec = tree.get("spec");
    if let Some(Value::Seq(services)) = spec.and_then(|s| s.get("services")).map(|n| &n.value) {
        for (i, svc) in services.iter().enumerate() {
            let Value::Map(entries) = &svc.value else {
                continue;
            };
            for e in entries
                .iter()
                .filter(|e| ARGV_KEYS.contains(&e.key.as_str()))
            {
                let path = child(&format!("spec.services[{i}]"), &e.key);
                strings(&e.value, &path, &mut found);
            }
        }
    }
    if let Some(hooks) = spec.and_then(|s| s.get("hooks")) {
        strings(hooks, "spec.hooks", &mut found);
    }
    let mut warnings = Vec::new();
    for (path, text) in found {
        // A log pattern is matched in memory, never passed to a process.
        if path.contains(".readiness.log") {
            continue;
        }
        let Some((name, _)) = secrets.iter().find(|(_, v)| text.contains(v.as_str())) else {
            continue;
        };
        let place = if path.contains(".readiness.http") || path.ends_with(".readiness.path") {
            "a probe URL"
        } else {
            "a command line"
        };
        warnings.push(index.error(
            &path,
            format!(
                "the value of secret `{name}` ends up in {place}, which every user on this machine can read (/proc/PID/cmdline, ps)"
            ),
            Some(
                "pass it as an environment variable instead (the service's `env:`, or `secrets: [NAME]` on a kubernetes service, whose keys become environment variables) and have the program read it from there".into(),
            ),
        ));
    }
    warnings
}

/// `(secret.key, value)` for every string value of `spec.secrets[].data` long enough to
/// be told apart from ordinary words (the same floor as redaction).
fn named_secrets(tree: &Node) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(Value::Seq(secrets)) = tree
        .get("spec")
        .and_then(|s| s.get("secrets"))
        .map(|s| &s.value)
    else {
        return out;
    };
    for secret in secrets {
        let name = secret.get("name").and_then(Node::as_str).unwrap_or("?");
        let Some(Value::Map(data)) = secret.get("data").map(|d| &d.value) else {
            continue;
        };
        for e in data {
            let value = match &e.value.value {
                Value::Str { text, .. } => text.clone(),
                Value::Int(i) => i.to_string(),
                _ => continue,
            };
            if value.len() >= MIN_SCRUB_LEN {
                out.push((format!("{name}.{}", e.key), value));
            }
        }
    }
    out
}

fn strings(node: &Node, path: &str, out: &mut Vec<(String, String)>) {
    match &node.value {
        Value::Str { text, .. } => out.push((path.to_owned(), text.clone())),
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                strings(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Map(entries) => {
            for e in entries {
                strings(&e.value, &child(path, &e.key), out);
            }
        }
        _ => {}
    }
}
