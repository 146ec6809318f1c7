//! What `devenv config show [--origin]` prints: the merged tree with secrets redacted.

use std::collections::{BTreeMap, HashMap};

use super::dotenv::DotEnv;
use super::index::child;
use super::interpolate::references;
use super::yaml::{Node, Value};
use super::Origin;

pub(crate) const REDACTED: &str = "<redacted>";

/// Shorter secret values are only redacted where they are defined: blanking every `1` or
/// `true` elsewhere would make the output useless while protecting nothing.
pub(crate) const MIN_SCRUB_LEN: usize = 4;

/// Replaces `spec.secrets[].data` values, and any copy of a secret value interpolated
/// elsewhere (e.g. into a `DATABASE_URL`), with `<redacted>`.
pub(crate) fn redact(root: &mut Node, secret_values: &[String]) {
    if let Some(Value::Seq(secrets)) = root
        .get_mut("spec")
        .and_then(|s| s.get_mut("secrets"))
        .map(|s| &mut s.value)
    {
        for secret in secrets {
            if let Some(data) = secret.get_mut("data") {
                blank(data);
            }
        }
    }
    scrub_node(root, &Scrubber::new(secret_values));
}

fn blank(node: &mut Node) {
    match &mut node.value {
        Value::Map(entries) => entries.iter_mut().for_each(|e| blank(&mut e.value)),
        Value::Seq(items) => items.iter_mut().for_each(blank),
        _ => {
            node.value = Value::Str {
                text: REDACTED.into(),
                plain: false,
            }
        }
    }
}

fn scrub_node(node: &mut Node, scrubber: &Scrubber) {
    match &mut node.value {
        Value::Str { text, .. } => *text = scrubber.scrub(text),
        Value::Map(entries) => entries
            .iter_mut()
            .for_each(|e| scrub_node(&mut e.value, scrubber)),
        Value::Seq(items) => items.iter_mut().for_each(|n| scrub_node(n, scrubber)),
        _ => {}
    }
}

/// Removes every occurrence of a (long enough) secret value from texts. One automaton
/// for all secrets: a config may hold thousands of secret values and of other values,
/// and comparing each pair took half a minute (aho-corasick is already in the build,
/// through regex).
pub(crate) enum Scrubber {
    Nothing,
    Secrets(aho_corasick::AhoCorasick),
    /// The automaton could not be built (past its size limits): every text is hidden.
    Everything,
}

impl Scrubber {
    pub(crate) fn new(secrets: &[String]) -> Self {
        let patterns: Vec<&str> = secrets
            .iter()
            .map(String::as_str)
            .filter(|s| s.len() >= MIN_SCRUB_LEN)
            .collect();
        if patterns.is_empty() {
            return Self::Nothing;
        }
        match aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&patterns)
        {
            Ok(automaton) => Self::Secrets(automaton),
            Err(_) => Self::Everything,
        }
    }

    pub(crate) fn scrub(&self, text: &str) -> String {
        match self {
            Self::Nothing => text.to_owned(),
            Self::Everything => REDACTED.to_owned(),
            Self::Secrets(automaton) => {
                let mut out = String::with_capacity(text.len());
                automaton.replace_all_with(text, &mut out, |_, _, dst| {
                    dst.push_str(REDACTED);
                    true
                });
                out
            }
        }
    }
}

/// Renders one scalar the way it would appear in YAML (quoted when needed).
fn scalar_text(node: &Node) -> String {
    let text = serde_yaml::to_string(&node.to_serde()).unwrap_or_default();
    text.trim_end_matches('\n').to_owned()
}

/// Every leaf with its dotted path and origin. Empty lists and mappings count as leaves so
/// that `services: []` still shows where it came from.
pub(crate) fn leaves(node: &Node, path: &str, out: &mut Vec<(String, String, Origin)>) {
    match &node.value {
        Value::Seq(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                leaves(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Map(entries) if !entries.is_empty() => {
            for e in entries {
                leaves(&e.value, &child(path, &e.key), out);
            }
        }
        _ => out.push((path.to_owned(), scalar_text(node), node.origin.clone())),
    }
}

/// Before interpolation: for each string value written in a file, the `${VAR}`s it uses
/// that the project's `.env` supplies (the process environment wins over `.env`, so
/// those are left out), with the `.env` line of each, for `config show --origin`.
pub(crate) fn dotenv_refs(
    root: &Node,
    process: &BTreeMap<String, String>,
    dotenv: &DotEnv,
) -> HashMap<String, Vec<(String, Origin)>> {
    fn walk(
        node: &Node,
        path: String,
        process: &BTreeMap<String, String>,
        dotenv: &DotEnv,
        out: &mut HashMap<String, Vec<(String, Origin)>>,
    ) {
        match &node.value {
            Value::Str { text, .. } if matches!(node.origin, Origin::File { .. }) => {
                let mut found: Vec<(String, Origin)> = Vec::new();
                for name in references(text) {
                    if process.contains_key(name) || found.iter().any(|(n, _)| n == name) {
                        continue;
                    }
                    if let Some(line) = dotenv.lines.get(name) {
                        found.push((name.to_owned(), line.clone()));
                    }
                }
                if !found.is_empty() {
                    out.insert(path, found);
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{path}[{i}]"), process, dotenv, out);
                }
            }
            Value::Map(entries) => {
                for e in entries {
                    walk(&e.value, child(&path, &e.key), process, dotenv, out);
                }
            }
            _ => {}
        }
    }
    let mut out = HashMap::new();
    if !dotenv.lines.is_empty() {
        walk(root, String::new(), process, dotenv, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn leaves_render_yaml_scalars() {
        let root =
            super::super::yaml::parse(Path::new("f"), "a: {b: [1, \"2\"], c: {}}").expect("yaml");
        let mut out = Vec::new();
        leaves(&root, "", &mut out);
        let got: Vec<(String, String)> = out.into_iter().map(|(p, v, _)| (p, v)).collect();
        assert_eq!(
            got,
            vec![
                ("a.b[0]".to_owned(), "1".to_owned()),
                ("a.b[1]".to_owned(), "'2'".to_owned()),
                ("a.c".to_owned(), "{}".to_owned()),
            ]
        );
    }

    #[test]
    fn references_skip_escapes() {
        assert_eq!(references("${A}-$${B}-${C:-x}-$D-${E"), vec!["A", "C"]);
    }
}
