//! `${VAR}`, `${VAR:-default}` and `$$` in string values.
//!
//! Runs on the merged tree, so a variable that a higher layer overrides away never has to
//! be set. Values from `DEVENV_*` variables are taken literally: they already come from
//! the environment.

use std::collections::BTreeMap;

use super::dotenv::is_var_name;
use super::yaml::{resolve_plain, Node, Value};
use super::{ConfigError, Origin};

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

/// What went wrong in one string, phrased without the string itself (it may be a secret).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ExpandError {
    pub message: String,
    pub hint: Option<String>,
}

/// Expands one string; `None` when it holds nothing to expand.
pub(crate) fn expand(text: &str, vars: &Vars<'_>) -> Result<Option<String>, ExpandError> {
    if !text.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(close) = inner.find('}') else {
                return Err(ExpandError {
                    message: "unterminated `${`: missing the closing `}`".into(),
                    hint: Some("write `$${` for a literal `${`".into()),
                });
            };
            let expr = &inner[..close];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            if !is_var_name(name) {
                return Err(ExpandError {
                    message: format!("`${{{name}}}` is not a valid variable reference"),
                    hint: Some(
                        "use ${NAME} or ${NAME:-default}; write `$$` for a literal `$`".into(),
                    ),
                });
            }
            match (vars.get(name), default) {
                (Some(""), Some(default)) => out.push_str(default),
                (Some(value), _) => out.push_str(value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(ExpandError {
                        message: format!("variable `{name}` is not set"),
                        hint: Some(format!(
                            "set it in the environment or the project's .env file, or use ${{{name}:-default}}"
                        )),
                    })
                }
            }
            rest = &inner[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
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
pub(crate) fn interpolate(
    node: &mut Node,
    vars: &Vars<'_>,
    path: &str,
    errors: &mut Vec<ConfigError>,
) {
    match &mut node.value {
        Value::Str { text, plain } => {
            if !matches!(node.origin, Origin::File { .. }) {
                return;
            }
            match expand(text, vars) {
                Ok(None) => {}
                Ok(Some(expanded)) => {
                    node.value = if *plain {
                        resolve_plain(&expanded)
                    } else {
                        Value::Str {
                            text: expanded,
                            plain: false,
                        }
                    };
                }
                Err(e) => errors.push(ConfigError::at(&node.origin, path, e.message, e.hint)),
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, vars, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Map(entries) => {
            for entry in entries {
                let path = child(path, &entry.key);
                interpolate(&mut entry.value, vars, &path, errors);
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
        assert_eq!(e.message, "variable `NOPE` is not set");
        assert!(e
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("${NOPE:-default}")));
        let e = expand("x ${A", &v).expect_err("unterminated");
        assert!(e.message.contains("unterminated"));
    }
}
