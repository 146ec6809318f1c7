//! The project's `.env` file: `KEY=VALUE` lines, the format docker compose and most
//! frameworks read, so one file can feed both them and devenv's `${VAR}` interpolation.

use std::collections::BTreeMap;
use std::path::Path;

use super::interpolate::{expand, Vars};
use super::{limits, ConfigError, Origin};

/// The variables of one `.env`-format file, with the line each came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DotEnv {
    pub vars: BTreeMap<String, String>,
    /// Where each variable was (last) set.
    pub lines: BTreeMap<String, Origin>,
    /// The names its values reference (`${NAME}`), from the process or earlier lines.
    pub refs: std::collections::BTreeSet<String>,
}

/// Reads `.env` if it exists; a missing file is the common case and means "no variables".
/// Read through [`limits::read_text`]: at most 1 MiB, and only a regular file.
pub(crate) fn read(file: &Path, process: &BTreeMap<String, String>) -> Result<DotEnv, ConfigError> {
    match limits::read_text(file) {
        Ok(text) => parse(file, &text, process),
        Err(limits::ReadError::NotFound(_)) => Ok(DotEnv::default()),
        Err(e) => Err(ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            hint: matches!(e, limits::ReadError::TooLarge(..)).then(limits::size_hint),
            message: e.to_string(),
        }),
    }
}

pub(crate) fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `.env` text. `${VAR}` in unquoted and double-quoted values is expanded from the
/// process environment, then from earlier lines (single quotes keep it literal), as docker
/// compose does. Lines never appear in errors: they usually hold secrets.
pub(crate) fn parse(
    file: &Path,
    text: &str,
    process: &BTreeMap<String, String>,
) -> Result<DotEnv, ConfigError> {
    let mut out = DotEnv::default();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let origin = Origin::File {
            file: file.to_path_buf(),
            line: u32::try_from(index + 1).unwrap_or(u32::MAX),
            column: 1,
        };
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((key, value)) = body.split_once('=') else {
            return Err(ConfigError::at(
                &origin,
                "",
                "expected a `KEY=VALUE` line".into(),
                Some("comment lines start with `#`".into()),
            ));
        };
        let key = key.trim();
        if !is_var_name(key) {
            return Err(ConfigError::at(
                &origin,
                "",
                format!("`{key}` is not a valid variable name"),
                Some("use letters, digits and `_`, not starting with a digit".into()),
            ));
        }
        let (value, literal) = unquote(value.trim());
        let value = if literal {
            value
        } else {
            out.refs.extend(
                super::interpolate::references(&value)
                    .into_iter()
                    .map(str::to_owned),
            );
            let vars = Vars {
                process,
                dotenv: &out.vars,
            };
            match expand(&value, &vars) {
                Ok(expanded) => expanded.unwrap_or(value),
                Err(e) => {
                    // Values here are often secrets, and a secret pasted where a
                    // reference was meant would be the "name": it is left out.
                    let (message, hint) = e.describe(true);
                    return Err(ConfigError::at(
                        &origin,
                        key,
                        message,
                        hint.map(|h| format!("{h} (or on an earlier line of this file)")),
                    ));
                }
            }
        };
        out.vars.insert(key.to_owned(), value);
        out.lines.insert(key.to_owned(), origin);
    }
    Ok(out)
}

/// The value and whether it is literal (single-quoted: no `${VAR}` expansion).
fn unquote(value: &str) -> (String, bool) {
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        let inner = &value[1..value.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        }
        (out, false)
    } else if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        (value[1..value.len() - 1].to_owned(), true)
    } else {
        // An unquoted value ends at a ` #` comment, as in shells.
        let value = match value.find(" #") {
            Some(i) => value[..i].trim_end().to_owned(),
            None => value.to_owned(),
        };
        (value, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_exports_and_quotes() {
        let text =
            "# comment\n\nA=1\nexport B = two words # trailing\nC=\"q \\\"x\\\"\"\nD='$lit'\nE=\n";
        let vars = parse(Path::new(".env"), text, &BTreeMap::new())
            .expect("parses")
            .vars;
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "q \"x\"");
        assert_eq!(vars["D"], "$lit");
        assert_eq!(vars["E"], "");
    }

    #[test]
    fn bad_line_is_located_without_echoing_it() {
        let err = parse(Path::new(".env"), "A=1\nhunter2\n", &BTreeMap::new()).expect_err("no =");
        assert_eq!((err.line, err.column), (2, 1));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn expands_from_the_process_then_earlier_lines() {
        let process = BTreeMap::from([("HOST".to_owned(), "db.local".to_owned())]);
        let text = "USER=app\nURL=postgres://${USER}@${HOST}:${PORT:-5432}/x\nLIT='${USER}'\nQ=\"${USER}s\"\n";
        let env = parse(Path::new("/p/.env"), text, &process).expect("parses");
        assert_eq!(env.vars["URL"], "postgres://app@db.local:5432/x");
        assert_eq!(env.vars["LIT"], "${USER}");
        assert_eq!(env.vars["Q"], "apps");
        assert_eq!(
            env.lines["URL"],
            Origin::File {
                file: "/p/.env".into(),
                line: 2,
                column: 1
            }
        );
    }

    #[test]
    fn unset_variable_in_a_value_is_located_without_the_value() {
        let err = parse(
            Path::new(".env"),
            "A=1\nB=s3cret-${NOPE}\n",
            &BTreeMap::new(),
        )
        .expect_err("unset");
        assert_eq!((err.line, err.key.as_str()), (2, "B"));
        assert!(err.message.contains("is not set"), "{err}");
        assert!(!err.to_string().contains("NOPE"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
