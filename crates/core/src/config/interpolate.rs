//! `${VAR}`, `${VAR:-default}` and `$$` in string values.
//!
//! Runs on the merged tree, so a variable that a higher layer overrides away never has to
//! be set. Values from `DEVENV_*` variables are taken literally: they already come from
//! the environment.

use std::collections::BTreeMap;

use super::dotenv::is_var_name;
use super::yaml::{resolve_plain, Node, Value};
use super::{limits, ConfigError, Origin};

/// Variable sources: the process environment wins over the project's `.env`, so a one-off
/// `API_PORT=9000 devenv up` beats the checked-in default.
pub(crate) struct Vars<'a> {
    pub process: &'a BTreeMap<String, String>,
    pub dotenv: &'a BTreeMap<String, String>,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.process
            .get(name)
            .or_else(|| self.dotenv.get(name))
            .map(String::as_str)
    }
}

/// The names `text` references as `${NAME}` or `${NAME:-default}` (`$$` escapes), read
/// the way [`expand`] reads them: what a config needs from the process environment.
pub(crate) fn references(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(close) = inner.find('}') else { break };
            let expr = &inner[..close];
            let name = expr.split_once(":-").map_or(expr, |(n, _)| n);
            if is_var_name(name) {
                names.push(name);
            }
            rest = &inner[close + 1..];
        } else {
            rest = after;
        }
    }
    names
}

/// Every name the string scalars from files under `node` reference (see [`references`]).
pub(crate) fn references_in(node: &Node, out: &mut std::collections::BTreeSet<String>) {
    match &node.value {
        Value::Str { text, .. } if matches!(node.origin, Origin::File { .. }) => {
            out.extend(references(text).into_iter().map(str::to_owned));
        }
        Value::Seq(items) => items.iter().for_each(|i| references_in(i, out)),
        Value::Map(entries) => entries.iter().for_each(|e| references_in(&e.value, out)),
        _ => {}
    }
}

/// What went wrong in one string. Holds no text of the string but a variable's name,
/// because the string may be a secret; [`ExpandError::describe`] phrases it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExpandError {
    /// A `${` at this character (counted from 1) has no closing `}`.
    Unterminated { at: usize },
    /// The `${...}` at this character does not hold a variable name.
    InvalidReference { at: usize },
    /// The variable is not set and the reference has no default.
    Unset { at: usize, name: String },
    /// The string would grow past the interpolation budget.
    TooLarge,
}

impl ExpandError {
    /// Message and hint. `secret` leaves out even the variable's name: a secret's value
    /// is sometimes pasted where a reference was meant (`${hunter2}`).
    pub(crate) fn describe(&self, secret: bool) -> (String, Option<String>) {
        match self {
            Self::Unterminated { at } => (
                format!("unterminated `${{` at character {at}: missing the closing `}}`"),
                Some("write `$${` for a literal `${`".into()),
            ),
            Self::InvalidReference { at } => (
                format!("the `${{...}}` at character {at} is not a valid variable reference"),
                Some("use ${NAME} or ${NAME:-default} (letters, digits and `_`); write `$$` for a literal `$`".into()),
            ),
            Self::Unset { at, .. } if secret => (
                format!("the variable referenced at character {at} is not set"),
                Some("set it in the environment or the project's .env file".into()),
            ),
            Self::Unset { name, .. } => (
                format!("variable `{name}` is not set"),
                Some(format!(
                    "set it in the environment or the project's .env file, or use ${{{name}:-default}}"
                )),
            ),
            Self::TooLarge => (
                format!(
                    "interpolation expands the config to more than {} KiB",
                    limits::MAX_EXPANDED_BYTES / 1024
                ),
                Some("a variable is far larger than a config value should be".into()),
            ),
        }
    }
}

/// Expands one string; `None` when it holds nothing to expand.
pub(crate) fn expand(text: &str, vars: &Vars<'_>) -> Result<Option<String>, ExpandError> {
    expand_within(text, vars, limits::MAX_EXPANDED_BYTES)
}

/// [`expand`], failing once the result would exceed `room` bytes.
fn expand_within(text: &str, vars: &Vars<'_>, room: usize) -> Result<Option<String>, ExpandError> {
    if !text.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len().min(room));
    let mut rest = text;
    let push = |out: &mut String, s: &str| {
        if out.len().saturating_add(s.len()) > room {
            return Err(ExpandError::TooLarge);
        }
        out.push_str(s);
        Ok(())
    };
    while let Some(dollar) = rest.find('$') {
        push(&mut out, &rest[..dollar])?;
        // Counted in characters, the way an editor shows a column.
        let at = text[..text.len() - rest.len() + dollar].chars().count() + 1;
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            push(&mut out, "$")?;
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(close) = inner.find('}') else {
                return Err(ExpandError::Unterminated { at });
            };
            let expr = &inner[..close];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            // `${tf.SERVICE.OUTPUT}` is the engine's to replace, once the output exists.
            if default.is_none() && super::terraform::is_output_ref(name) {
                push(&mut out, &rest[dollar..dollar + 2 + close + 1])?;
                rest = &inner[close + 1..];
                continue;
            }
            if !is_var_name(name) {
                return Err(ExpandError::InvalidReference { at });
            }
            match (vars.get(name), default) {
                (Some(""), Some(default)) => push(&mut out, default)?,
                (Some(value), _) => push(&mut out, value)?,
                (None, Some(default)) => push(&mut out, default)?,
                (None, None) => {
                    return Err(ExpandError::Unset {
                        at,
                        name: name.to_owned(),
                    })
                }
            }
            rest = &inner[close + 1..];
        } else {
            push(&mut out, "$")?;
            rest = after;
        }
    }
    push(&mut out, rest)?;
    Ok(Some(out))
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Expands every string scalar that came from a file, collecting one error per scalar.
/// All expansions together may produce at most [`limits::MAX_EXPANDED_BYTES`]: a large
/// variable referenced from many places must not multiply into gigabytes.
pub(crate) fn interpolate(
    node: &mut Node,
    vars: &Vars<'_>,
    path: &str,
    errors: &mut Vec<ConfigError>,
) {
    let mut room = limits::MAX_EXPANDED_BYTES;
    walk(node, vars, path, errors, &mut room);
}

fn walk(
    node: &mut Node,
    vars: &Vars<'_>,
    path: &str,
    errors: &mut Vec<ConfigError>,
    room: &mut usize,
) {
    match &mut node.value {
        Value::Str { text, plain } => {
            if !matches!(node.origin, Origin::File { .. }) {
                return;
            }
            match expand_within(text, vars, *room) {
                Ok(None) => {}
                Ok(Some(expanded)) => {
                    *room -= expanded.len();
                    node.value = if *plain {
                        resolve_plain(&expanded)
                    } else {
                        Value::Str {
                            text: expanded,
                            plain: false,
                        }
                    };
                }
                Err(e) => {
                    let (message, hint) = e.describe(path.starts_with("spec.secrets"));
                    errors.push(ConfigError::at(&node.origin, path, message, hint));
                    if e == ExpandError::TooLarge {
                        *room = 0;
                    }
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, vars, &format!("{path}[{i}]"), errors, room);
            }
        }
        Value::Map(entries) => {
            for entry in entries {
                let path = child(path, &entry.key);
                walk(&mut entry.value, vars, &path, errors, room);
            }
        }
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let process = BTreeMap::from([
            ("A".to_owned(), "proc".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]);
        let dotenv = BTreeMap::from([
            ("A".to_owned(), "dotenv".to_owned()),
            ("B".to_owned(), "from-dotenv".to_owned()),
        ]);
        (process, dotenv)
    }

    #[test]
    fn expands_defaults_escapes_and_precedence() {
        let (process, dotenv) = vars();
        let v = Vars {
            process: &process,
            dotenv: &dotenv,
        };
        let x = |s: &str| expand(s, &v).expect("expands");
        assert_eq!(x("plain"), None);
        assert_eq!(x("${A}-${B}").as_deref(), Some("proc-from-dotenv"));
        assert_eq!(x("${MISSING:-8000}").as_deref(), Some("8000"));
        assert_eq!(x("${EMPTY:-d}").as_deref(), Some("d"));
        assert_eq!(x("$${A} costs $5").as_deref(), Some("${A} costs $5"));
    }

    #[test]
    fn undefined_and_unterminated_are_errors() {
        let (process, dotenv) = vars();
        let v = Vars {
            process: &process,
            dotenv: &dotenv,
        };
        let e = expand("x ${NOPE} y", &v).expect_err("undefined");
        let (message, hint) = e.describe(false);
        assert_eq!(message, "variable `NOPE` is not set");
        assert!(hint.is_some_and(|h| h.contains("${NOPE:-default}")));
        let e = expand("x ${A", &v).expect_err("unterminated");
        assert_eq!(e, ExpandError::Unterminated { at: 3 });
        assert!(e.describe(false).0.contains("unterminated"));
    }

    #[test]
    fn errors_never_echo_the_text_and_secrets_not_even_the_name() {
        let (process, dotenv) = vars();
        let v = Vars {
            process: &process,
            dotenv: &dotenv,
        };
        let e = expand("pw ${hunter2 secret}", &v).expect_err("invalid");
        let (message, hint) = e.describe(false);
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("character 4"), "{message}");
        assert!(!hint.unwrap_or_default().contains("hunter2"));
        let e = expand("${hunter2}", &v).expect_err("unset");
        let (message, hint) = e.describe(true);
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!hint.unwrap_or_default().contains("hunter2"));
    }

    #[test]
    fn expansion_is_bounded_over_the_whole_tree() {
        let big = "x".repeat(limits::MAX_EXPANDED_BYTES / 4 + 1);
        let process = BTreeMap::from([("BIG".to_owned(), big)]);
        let dotenv = BTreeMap::new();
        let v = Vars {
            process: &process,
            dotenv: &dotenv,
        };
        // Each string fits; the four together do not.
        let text = "[\"${BIG}\", \"${BIG}\", \"${BIG}\", \"${BIG}\"]";
        let mut node =
            super::super::yaml::parse(std::path::Path::new("f.yml"), &format!("a: {text}"))
                .expect("parses");
        let mut errors = Vec::new();
        interpolate(&mut node, &v, "", &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("more than"), "{}", errors[0]);
    }
}
