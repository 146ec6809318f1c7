//! The project's `.env` file: `KEY=VALUE` lines, the format docker compose and most
//! frameworks read, so one file can feed both them and devenv's `${VAR}` interpolation.

use std::collections::BTreeMap;
use std::path::Path;

use super::{limits, ConfigError, Origin};

/// Reads `.env` if it exists; a missing file is the common case and means "no variables".
/// Read through [`limits::read_text`]: at most 1 MiB, and only a regular file.
pub(crate) fn read(file: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    match limits::read_text(file) {
        Ok(text) => parse(file, &text),
        Err(limits::ReadError::NotFound(_)) => Ok(BTreeMap::new()),
        Err(e) => Err(ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            hint: matches!(e, limits::ReadError::TooLarge(_)).then(limits::size_hint),
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

/// Parses `.env` text. Lines never appear in errors: they usually hold secrets.
pub(crate) fn parse(file: &Path, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut vars = BTreeMap::new();
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
        vars.insert(key.to_owned(), unquote(value.trim()));
    }
    Ok(vars)
}

fn unquote(value: &str) -> String {
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
        out
    } else if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        value[1..value.len() - 1].to_owned()
    } else {
        // An unquoted value ends at a ` #` comment, as in shells.
        match value.find(" #") {
            Some(i) => value[..i].trim_end().to_owned(),
            None => value.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_exports_and_quotes() {
        let text =
            "# comment\n\nA=1\nexport B = two words # trailing\nC=\"q \\\"x\\\"\"\nD='$lit'\nE=\n";
        let vars = parse(Path::new(".env"), text).expect("parses");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "q \"x\"");
        assert_eq!(vars["D"], "$lit");
        assert_eq!(vars["E"], "");
    }

    #[test]
    fn bad_line_is_located_without_echoing_it() {
        let err = parse(Path::new(".env"), "A=1\nhunter2\n").expect_err("no =");
        assert_eq!((err.line, err.column), (2, 1));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
