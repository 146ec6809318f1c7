//! Compose's variable interpolation (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?error}`, `${VAR:+alternative}`, `$$`), read two ways: [`Interp::resolve`]
//! gives the value compose would use (for ports and durations, which the conversion
//! must understand), [`Interp::keep`] rewrites the text into devenv's own `${VAR}` /
//! `${VAR:-default}` references so the written config still reads the environment and
//! `.env` when it loads, instead of baking today's values in.

use std::collections::BTreeMap;

use crate::config::dotenv::is_var_name;

/// One `$...` read from a string.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    /// `$$`: a literal `$`.
    Dollar,
    Var {
        name: &'a str,
        op: Op<'a>,
    },
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Op<'a> {
    Plain,
    /// `:-` (empty counts as unset) or `-`.
    Default {
        word: &'a str,
        colon: bool,
    },
    /// `:?` or `?`: an error when unset.
    Required {
        colon: bool,
    },
    /// `:+` or `+`: the word when set.
    Alternative {
        word: &'a str,
        colon: bool,
    },
}

/// Splits `text` into pieces; `Err` names what is malformed.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        if dollar > 0 {
            out.push(Piece::Text(&rest[..dollar]));
        }
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push(Piece::Dollar);
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            // The closing brace, counting nested `${...}` in a default.
            let mut depth = 1usize;
            let mut close = None;
            for (i, b) in inner.bytes().enumerate() {
                match b {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            close = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(close) = close else {
                return Err("unterminated `${`: missing the closing `}`".into());
            };
            let expr = &inner[..close];
            let end = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, tail) = expr.split_at(end);
            if !is_var_name(name) {
                return Err(format!("`${{{expr}}}` is not a valid variable reference"));
            }
            let (colon, tail) = match tail.strip_prefix(':') {
                Some(t) => (true, t),
                None => (false, tail),
            };
            let op = if tail.is_empty() && !colon {
                Op::Plain
            } else if let Some(word) = tail.strip_prefix('-') {
                Op::Default { word, colon }
            } else if tail.starts_with('?') {
                Op::Required { colon }
            } else if let Some(word) = tail.strip_prefix('+') {
                Op::Alternative { word, colon }
            } else {
                return Err(format!("`${{{expr}}}` is not a valid variable reference"));
            };
            out.push(Piece::Var { name, op });
            rest = &inner[close + 1..];
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..end];
            if is_var_name(name) {
                out.push(Piece::Var {
                    name,
                    op: Op::Plain,
                });
                rest = &after[end..];
            } else {
                // A lone `$` is literal in compose too.
                out.push(Piece::Text("$"));
                rest = after;
            }
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// The variables compose would see: the process environment over the compose file's
/// `.env`.
pub(super) struct Interp<'a> {
    pub process: &'a BTreeMap<String, String>,
    pub dotenv: &'a BTreeMap<String, String>,
}

/// What [`Interp::keep`] had to do beyond a one-to-one rewrite, for the report.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Kept {
    /// Referenced without a default and set nowhere: written as `${NAME:-}` (empty, as
    /// compose makes it).
    pub unset: Vec<String>,
    /// A form devenv has no reference for (`:+`, a nested default): its value today was
    /// written instead.
    pub baked: Vec<String>,
}

impl Interp<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.process
            .get(name)
            .or_else(|| self.dotenv.get(name))
            .map(String::as_str)
    }

    /// The value compose would use.
    pub fn resolve(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        for piece in pieces(text)? {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Dollar => out.push('$'),
                Piece::Var { name, op } => {
                    let value = self.get(name);
                    let set = |colon: bool| value.is_some_and(|v| !(colon && v.is_empty()));
                    match op {
                        Op::Plain => out.push_str(value.unwrap_or("")),
                        Op::Default { word, colon } => {
                            if set(colon) {
                                out.push_str(value.unwrap_or(""));
                            } else {
                                out.push_str(&self.resolve(word)?);
                            }
                        }
                        Op::Required { colon } => {
                            if !set(colon) {
                                return Err(format!("variable `{name}` is required but not set"));
                            }
                            out.push_str(value.unwrap_or(""));
                        }
                        Op::Alternative { word, colon } => {
                            if set(colon) {
                                out.push_str(&self.resolve(word)?);
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The text rewritten with devenv's references.
    pub fn keep(&self, text: &str, kept: &mut Kept) -> Result<String, String> {
        let mut out = String::new();
        for piece in pieces(text)? {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Dollar => out.push_str("$$"),
                Piece::Var { name, op } => match op {
                    Op::Plain | Op::Required { .. } => {
                        if self.get(name).is_some() || matches!(op, Op::Required { .. }) {
                            out.push_str(&format!("${{{name}}}"));
                        } else {
                            push_unique(&mut kept.unset, name);
                            out.push_str(&format!("${{{name}:-}}"));
                        }
                    }
                    Op::Default { word, .. } if !word.contains(['$', '}']) => {
                        out.push_str(&format!("${{{name}:-{word}}}"));
                    }
                    Op::Default { .. } | Op::Alternative { .. } => {
                        push_unique(&mut kept.baked, name);
                        let value = self.resolve(&format!("{}}}", rebuild(name, op)))?;
                        // `$` in the value is literal: escape it for devenv.
                        out.push_str(&value.replace('$', "$$"));
                    }
                },
            }
        }
        Ok(out)
    }
}

/// `${NAME<op>` as written (without the closing brace).
fn rebuild(name: &str, op: Op<'_>) -> String {
    let colon = |c: bool| if c { ":" } else { "" };
    match op {
        Op::Plain => format!("${{{name}"),
        Op::Default { word, colon: c } => format!("${{{name}{}-{word}", colon(c)),
        Op::Required { colon: c } => format!("${{{name}{}?", colon(c)),
        Op::Alternative { word, colon: c } => format!("${{{name}{}+{word}", colon(c)),
    }
}

fn push_unique(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let process = BTreeMap::from([
            ("TAG".to_owned(), "16".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]);
        let dotenv = BTreeMap::from([
            ("WEB_PORT".to_owned(), "8080".to_owned()),
            ("TAG".to_owned(), "15".to_owned()),
        ]);
        (process, dotenv)
    }

    #[test]
    fn resolves_as_compose_does() {
        let (p, d) = vars();
        let i = Interp {
            process: &p,
            dotenv: &d,
        };
        assert_eq!(i.resolve("postgres:${TAG}").unwrap(), "postgres:16");
        assert_eq!(i.resolve("$WEB_PORT:80").unwrap(), "8080:80");
        assert_eq!(i.resolve("${NOPE:-5432}").unwrap(), "5432");
        assert_eq!(i.resolve("${EMPTY:-x}").unwrap(), "x");
        assert_eq!(i.resolve("${EMPTY-x}").unwrap(), "");
        assert_eq!(i.resolve("${NOPE}").unwrap(), "");
        assert_eq!(i.resolve("${TAG:+yes}").unwrap(), "yes");
        assert_eq!(i.resolve("${NOPE:-${WEB_PORT}}").unwrap(), "8080");
        assert_eq!(i.resolve("a$$b $ c").unwrap(), "a$b $ c");
        assert!(i.resolve("${NOPE:?set it}").is_err());
        assert!(i.resolve("${oops").is_err());
        assert!(i.resolve("${1X}").is_err());
    }

    #[test]
    fn keeps_references_in_devenv_form() {
        let (p, d) = vars();
        let i = Interp {
            process: &p,
            dotenv: &d,
        };
        let mut kept = Kept::default();
        assert_eq!(
            i.keep("postgres:${TAG}", &mut kept).unwrap(),
            "postgres:${TAG}"
        );
        assert_eq!(i.keep("$WEB_PORT", &mut kept).unwrap(), "${WEB_PORT}");
        assert_eq!(i.keep("${A-b}", &mut kept).unwrap(), "${A:-b}");
        assert_eq!(i.keep("${A:?x}", &mut kept).unwrap(), "${A}");
        assert_eq!(i.keep("echo $$HOME", &mut kept).unwrap(), "echo $$HOME");
        assert_eq!(kept, Kept::default());
        assert_eq!(
            i.keep("key=${SECRET}", &mut kept).unwrap(),
            "key=${SECRET:-}"
        );
        assert_eq!(i.keep("${TAG:+on}", &mut kept).unwrap(), "on");
        assert_eq!(i.keep("${X:-${WEB_PORT}}", &mut kept).unwrap(), "8080");
        assert_eq!(kept.unset, ["SECRET"]);
        assert_eq!(kept.baked, ["TAG", "X"]);
    }
}
