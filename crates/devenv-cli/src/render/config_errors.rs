//! Located config errors: `file:line:col: key: message` and a hint line.

use std::fmt::Write as _;

use devenv_api::pb;
use serde::Serialize;

use super::color::{paint, BOLD, DIM, RED};

pub fn located(errors: &[pb::ConfigError], color: bool) -> String {
    render(errors, color, "")
}

/// Warnings: located like errors, each line marked `warning:`.
pub fn warnings(warnings: &[pb::ConfigError], color: bool) -> String {
    render(warnings, color, "warning: ")
}

fn render(errors: &[pb::ConfigError], color: bool, mark: &str) -> String {
    let mut out = String::new();
    for e in errors {
        let mut place = e.file.clone();
        if e.line != 0 {
            let _ = write!(place, ":{}:{}", e.line, e.column);
        }
        let mut head = mark.to_owned();
        if !place.is_empty() {
            let _ = write!(head, "{}: ", paint(color, BOLD, &place));
        }
        if !e.key.is_empty() {
            let _ = write!(head, "{}: ", e.key);
        }
        let _ = writeln!(out, "{head}{}", paint(color, RED, &e.message));
        if !e.hint.is_empty() {
            let _ = writeln!(out, "  {}", paint(color, DIM, &format!("hint: {}", e.hint)));
        }
    }
    out
}

#[derive(Debug, Serialize)]
struct ValidateJson<'a> {
    valid: bool,
    name: &'a str,
    services: &'a [String],
    errors: Vec<ErrorJson<'a>>,
    warnings: Vec<ErrorJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ErrorJson<'a> {
    file: &'a str,
    line: u32,
    column: u32,
    key: &'a str,
    message: &'a str,
    hint: &'a str,
}

impl<'a> From<&'a pb::ConfigError> for ErrorJson<'a> {
    fn from(e: &'a pb::ConfigError) -> Self {
        Self {
            file: &e.file,
            line: e.line,
            column: e.column,
            key: &e.key,
            message: &e.message,
            hint: &e.hint,
        }
    }
}

pub fn json(v: &pb::ValidateResponse) -> String {
    let doc = ValidateJson {
        valid: v.valid,
        name: &v.name,
        services: &v.services,
        errors: v.errors.iter().map(ErrorJson::from).collect(),
        warnings: v.warnings.iter().map(ErrorJson::from).collect(),
    };
    serde_json::to_string_pretty(&doc).expect("always serialisable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_located_with_hints() {
        let errors = vec![
            pb::ConfigError {
                file: ".devenv/config.yml".into(),
                line: 12,
                column: 7,
                key: "spec.services[1].dependecies".into(),
                message: "unknown key".into(),
                hint: "did you mean `dependencies`?".into(),
            },
            pb::ConfigError {
                message: "cycle: a -> b -> a".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            located(&errors, false),
            ".devenv/config.yml:12:7: spec.services[1].dependecies: unknown key\n  \
             hint: did you mean `dependencies`?\ncycle: a -> b -> a\n"
        );
    }
}
