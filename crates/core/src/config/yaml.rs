//! A YAML tree that remembers where every node and key was written.
//!
//! serde_yaml drops positions, and errors without a line number send people hunting, so
//! files are parsed with yaml-rust2's event parser (which reports markers) into [`Node`]s.
//! Every later stage (merge, interpolation, deserialization, checks) reports through the
//! origins kept here.
//!
//! The event-to-tree `Builder` (one state machine over yaml-rust2's events: anchors,
//! aliases, size limits) is `yaml/builder.rs`.

use std::path::Path;

use yaml_rust2::Yaml;

use super::{limits, ConfigError, Origin};

mod builder;

use builder::Builder;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// `plain` strings were written without quotes; after `${VAR}` substitution they are
    /// typed again, so `port: ${PORT}` yields a number while `"${PORT}"` stays a string.
    Str {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_origin: Origin,
    pub value: Node,
}

impl Node {
    pub fn new(value: Value, origin: Origin) -> Self {
        Self { value, origin }
    }

    pub fn empty_map(origin: Origin) -> Self {
        Self::new(Value::Map(Vec::new()), origin)
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|e| e.key == key)
                .map(|e| &mut e.value),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Rewrites every origin in the subtree; used for values that came from one place
    /// as a whole (a `DEVENV_*` variable).
    pub fn set_origin_deep(&mut self, origin: &Origin) {
        self.origin = origin.clone();
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.set_origin_deep(origin)),
            Value::Map(entries) => entries.iter_mut().for_each(|e| {
                e.key_origin = origin.clone();
                e.value.set_origin_deep(origin);
            }),
            _ => {}
        }
    }

    /// What kind of thing this is, for messages like "found a string". Never includes the
    /// value itself, because the value may be a secret.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str { .. } => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn to_serde(&self) -> serde_yaml::Value {
        use serde_yaml::Value as V;
        match &self.value {
            Value::Null => V::Null,
            Value::Bool(b) => V::Bool(*b),
            Value::Int(i) => V::Number((*i).into()),
            Value::Float(f) => V::Number((*f).into()),
            Value::Str { text, .. } => V::String(text.clone()),
            Value::Seq(items) => V::Sequence(items.iter().map(Node::to_serde).collect()),
            Value::Map(entries) => V::Mapping(
                entries
                    .iter()
                    .map(|e| (V::String(e.key.clone()), e.value.to_serde()))
                    .collect(),
            ),
        }
    }
}

/// Types a plain (unquoted) scalar the way YAML 1.2's core schema does.
pub(crate) fn resolve_plain(text: &str) -> Value {
    match Yaml::from_str(text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Int(i),
        Yaml::Real(r) => match Yaml::Real(r).as_f64() {
            Some(f) => Value::Float(f),
            None => Value::Str {
                text: text.to_owned(),
                plain: true,
            },
        },
        _ => Value::Str {
            text: text.to_owned(),
            plain: true,
        },
    }
}

/// Parses one YAML document. An empty file (or one holding only comments) is an empty
/// mapping, so an empty environment file is harmless.
pub(crate) fn parse(file: &Path, text: &str) -> Result<Node, ConfigError> {
    if text.len() > limits::MAX_INPUT_BYTES {
        return Err(ConfigError::at(
            &Origin::File {
                file: file.to_path_buf(),
                line: 0,
                column: 0,
            },
            "",
            format!(
                "the file is larger than {} KiB",
                limits::MAX_INPUT_BYTES / 1024
            ),
            Some(limits::size_hint()),
        ));
    }
    let mut builder = Builder::new(file);
    if let Err(e) = builder.run(text) {
        let origin = builder.origin(e.marker());
        return Err(ConfigError::at(
            &origin,
            "",
            format!("invalid YAML: {}", e.info()),
            None,
        ));
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    let start = Origin::File {
        file: file.to_path_buf(),
        line: 1,
        column: 1,
    };
    match builder.root {
        None => Ok(Node::empty_map(start)),
        Some(Node {
            value: Value::Null, ..
        }) => Ok(Node::empty_map(start)),
        Some(
            node @ Node {
                value: Value::Map(_),
                ..
            },
        ) => Ok(node),
        Some(node) => Err(ConfigError::at(
            &node.origin,
            "",
            format!(
                "the top level of a config file must be a mapping of keys, found {}",
                node.kind_name()
            ),
            Some("start the file with `apiVersion: devenv/v1`".into()),
        )),
    }
}

/// Parses a value given outside a file (a `DEVENV_*` variable) as YAML, falling back to
/// the literal text when it isn't valid YAML on its own. A value beyond the
/// [`limits`] is an error (the message, never the value), not a literal.
pub(crate) fn parse_value(text: &str, origin: &Origin) -> Result<Node, String> {
    if text.len() > limits::MAX_INPUT_BYTES {
        return Err(format!(
            "the value is larger than {} KiB",
            limits::MAX_INPUT_BYTES / 1024
        ));
    }
    let mut builder = Builder::new(Path::new(""));
    let parsed = builder.run(text);
    if builder.over_limit {
        return Err(builder
            .error
            .map(|e| e.message)
            .unwrap_or_else(|| "the value is too large".into()));
    }
    let mut node = match (parsed, builder.error, builder.root) {
        (Ok(()), None, Some(node)) => node,
        _ => Node::new(
            Value::Str {
                text: text.to_owned(),
                plain: false,
            },
            origin.clone(),
        ),
    };
    node.set_origin_deep(origin);
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(node: &Node) -> (u32, u32) {
        match &node.origin {
            Origin::File { line, column, .. } => (*line, *column),
            other => panic!("expected a file origin, got {other:?}"),
        }
    }

    #[test]
    fn scalars_and_keys_carry_line_and_column() {
        let text = "a: 1\nb:\n  c: \"2\"\n  d: [x, 3.5]\n";
        let root = parse(Path::new("f.yml"), text).expect("parses");
        let a = root.get("a").expect("a");
        assert_eq!(a.value, Value::Int(1));
        assert_eq!(at(a), (1, 4));
        let c = root.get("b").and_then(|b| b.get("c")).expect("c");
        assert_eq!(
            c.value,
            Value::Str {
                text: "2".into(),
                plain: false
            }
        );
        assert_eq!(at(c), (3, 6));
        let d = root.get("b").and_then(|b| b.get("d")).expect("d");
        match &d.value {
            Value::Seq(items) => {
                assert_eq!(at(&items[0]), (4, 7));
                assert_eq!(items[1].value, Value::Float(3.5));
                assert_eq!(at(&items[1]), (4, 10));
            }
            other => panic!("expected a list, got {other:?}"),
        }
        let Value::Map(entries) = &root.value else {
            panic!("root is a map")
        };
        assert_eq!(
            at(&Node::new(Value::Null, entries[1].key_origin.clone())),
            (2, 1)
        );
    }

    #[test]
    fn syntax_error_is_located() {
        let err = parse(Path::new("f.yml"), "a: 1\nb: [1, 2\n").expect_err("unclosed");
        assert_eq!(err.file, Path::new("f.yml"));
        assert!(err.line >= 2, "{err}");
        assert!(err.message.starts_with("invalid YAML"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse(Path::new("f.yml"), "a: 1\nb: 2\na: 3\n").expect_err("dup");
        assert_eq!((err.line, err.column), (3, 1));
        assert!(err.message.contains("duplicate key `a`"), "{err}");
        assert!(err.message.contains("line 1"), "{err}");
    }

    #[test]
    fn empty_file_is_an_empty_mapping() {
        let root = parse(Path::new("f.yml"), "# nothing\n").expect("parses");
        assert_eq!(root.value, Value::Map(Vec::new()));
    }

    #[test]
    fn anchors_and_aliases_expand() {
        let root = parse(Path::new("f.yml"), "a: &x [1]\nb: *x\n").expect("parses");
        assert_eq!(
            root.get("b").map(|n| &n.value),
            root.get("a").map(|n| &n.value)
        );
    }
}
