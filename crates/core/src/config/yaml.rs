//! A YAML tree that remembers where every node and key was written.
//!
//! serde_yaml drops positions, and errors without a line number send people hunting, so
//! files are parsed with yaml-rust2's event parser (which reports markers) into [`Node`]s.
//! Every later stage (merge, interpolation, deserialization, checks) reports through the
//! origins kept here.
//!
//! Why one file of ~670 lines (75 of them tests): the event-to-tree `Builder` is one
//! state machine over yaml-rust2's events (anchors, aliases, size limits), and
//! `Node` is the type it builds.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

use super::{limits, ConfigError, Origin};

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

enum Frame {
    Seq {
        origin: Origin,
        anchor: usize,
        items: Vec<Node>,
        /// The builder's [`Weight`] when the list started, to weigh it for aliases.
        start: Weight,
    },
    Map {
        origin: Origin,
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<(String, Origin)>,
        /// The keys in `entries`, to find duplicates without comparing every pair.
        keys: HashSet<String>,
        start: Weight,
    },
}

/// How much a document (or a subtree, as a difference) has materialised: what the
/// [`limits`] count, so an alias is charged for everything it copies.
#[derive(Debug, Clone, Copy, Default)]
struct Weight {
    nodes: usize,
    text: usize,
}

struct Builder<'a> {
    file: &'a Path,
    stack: Vec<Frame>,
    /// Anchored nodes with their weight, charged again at each alias.
    anchors: HashMap<usize, (Node, Weight)>,
    root: Option<Node>,
    error: Option<ConfigError>,
    total: Weight,
    alias_nodes: usize,
    /// A limit was hit: parsing stopped and `error` says which.
    over_limit: bool,
}

impl<'a> Builder<'a> {
    fn new(file: &'a Path) -> Self {
        Self {
            file,
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            error: None,
            total: Weight::default(),
            alias_nodes: 0,
            over_limit: false,
        }
    }

    /// Feeds the parser's events to the builder until the first document ends or a
    /// limit is hit. The events are pulled one by one rather than through
    /// `Parser::load`, whose recursion over nesting could overflow the stack before a
    /// depth limit had a say, and which cannot be stopped half-way.
    fn run(&mut self, text: &str) -> Result<(), yaml_rust2::ScanError> {
        let mut parser = Parser::new_from_str(text);
        loop {
            let (ev, mark) = parser.next_token()?;
            let last = matches!(ev, Event::StreamEnd | Event::DocumentEnd);
            self.on_event(ev, mark);
            if last || self.over_limit {
                return Ok(());
            }
        }
    }

    /// Records a limit error; parsing stops after the current event.
    fn limit(&mut self, origin: &Origin, message: String) {
        self.over_limit = true;
        let hint = "devenv bounds what one config may expand to, so a runaway or hostile file cannot exhaust the daemon's memory";
        // A limit error replaces any earlier one: it is the reason parsing stopped.
        self.error = Some(ConfigError::at(origin, "", message, Some(hint.into())));
    }

    /// Charges `w` to the document; false (with the error recorded) past a limit.
    fn charge(&mut self, w: Weight, origin: &Origin) -> bool {
        self.total.nodes = self.total.nodes.saturating_add(w.nodes);
        self.total.text = self.total.text.saturating_add(w.text);
        if self.total.nodes > limits::MAX_NODES {
            self.limit(
                origin,
                format!(
                    "the document expands to more than {} values (aliases included)",
                    limits::MAX_NODES
                ),
            );
        } else if self.total.text > limits::MAX_TEXT_BYTES {
            self.limit(
                origin,
                format!(
                    "the document expands to more than {} KiB of text (aliases included)",
                    limits::MAX_TEXT_BYTES / 1024
                ),
            );
        }
        !self.over_limit
    }

    fn open(&mut self, origin: &Origin) -> bool {
        if self.stack.len() >= limits::MAX_DEPTH {
            self.limit(
                origin,
                format!(
                    "lists and mappings are nested more than {} levels deep",
                    limits::MAX_DEPTH
                ),
            );
            return false;
        }
        self.charge(Weight { nodes: 1, text: 0 }, origin)
    }

    fn origin(&self, mark: &Marker) -> Origin {
        Origin::File {
            file: self.file.to_path_buf(),
            line: u32::try_from(mark.line()).unwrap_or(u32::MAX),
            // yaml-rust2 counts columns from 0; people and editors count from 1.
            column: u32::try_from(mark.col() + 1).unwrap_or(u32::MAX),
        }
    }

    fn fail(&mut self, e: ConfigError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn finish(&mut self, node: Node, anchor: usize, start: Weight) {
        if anchor > 0 {
            let weight = Weight {
                nodes: self.total.nodes - start.nodes,
                text: self.total.text - start.text,
            };
            self.anchors.insert(anchor, (node.clone(), weight));
        }
        self.push(node);
    }

    fn push(&mut self, node: Node) {
        let mut dup = None;
        let mut bad_key = None;
        let mut too_long = None;
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => {
                if items.len() >= limits::MAX_ENTRIES {
                    too_long = Some(node.origin);
                } else {
                    items.push(node);
                }
            }
            Some(Frame::Map { entries, key, .. })
                if key.is_none() && entries.len() >= limits::MAX_ENTRIES =>
            {
                too_long = Some(node.origin);
            }
            Some(Frame::Map {
                entries, key, keys, ..
            }) => match key.take() {
                Some((key, key_origin)) => entries.push(Entry {
                    key,
                    key_origin,
                    value: node,
                }),
                None => {
                    let text = match node.value {
                        Value::Str { text, .. } => Some(text),
                        Value::Int(i) => Some(i.to_string()),
                        Value::Bool(b) => Some(b.to_string()),
                        Value::Float(f) => Some(f.to_string()),
                        Value::Null => Some(String::new()),
                        Value::Seq(_) | Value::Map(_) => None,
                    };
                    match text {
                        Some(text) => {
                            // The set keeps a wide mapping linear; the scan runs only
                            // for a duplicate, to say where the first one was.
                            if !keys.insert(text.clone()) {
                                if let Some(first) = entries.iter().find(|e| e.key == text) {
                                    dup = Some((
                                        text.clone(),
                                        first.key_origin.clone(),
                                        node.origin.clone(),
                                    ));
                                }
                            }
                            *key = Some((text, node.origin));
                        }
                        None => {
                            bad_key = Some(node.origin.clone());
                            *key = Some((String::new(), node.origin));
                        }
                    }
                }
            },
        }
        if let Some(origin) = too_long {
            self.limit(
                &origin,
                format!(
                    "a list or mapping has more than {} entries",
                    limits::MAX_ENTRIES
                ),
            );
        }
        if let Some(origin) = bad_key {
            self.fail(ConfigError::at(
                &origin,
                "",
                "a mapping key must be a plain string, not a list or mapping".into(),
                None,
            ));
        }
        if let Some((key, first, here)) = dup {
            let line = match first {
                Origin::File { line, .. } => line,
                _ => 0,
            };
            self.fail(ConfigError::at(
                &here,
                &key,
                format!("duplicate key `{key}` (first defined on line {line})"),
                Some("remove one of them".into()),
            ));
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.over_limit {
            return;
        }
        let origin = self.origin(&mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let start = self.total;
                let weight = Weight {
                    nodes: 1,
                    text: text.len(),
                };
                if self.charge(weight, &origin) {
                    let value = scalar_value(text, style, tag.as_ref());
                    self.finish(Node::new(value, origin), anchor, start);
                }
            }
            Event::SequenceStart(anchor, _) => {
                let start = self.total;
                if self.open(&origin) {
                    self.stack.push(Frame::Seq {
                        origin,
                        anchor,
                        items: Vec::new(),
                        start,
                    });
                }
            }
            Event::MappingStart(anchor, _) => {
                let start = self.total;
                if self.open(&origin) {
                    self.stack.push(Frame::Map {
                        origin,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                        keys: HashSet::new(),
                        start,
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq {
                    origin,
                    anchor,
                    items,
                    start,
                }) => {
                    let origin = earliest(origin, items.first().map(|n| &n.origin));
                    self.finish(Node::new(Value::Seq(items), origin), anchor, start);
                }
                Some(Frame::Map {
                    origin,
                    anchor,
                    entries,
                    start,
                    ..
                }) => {
                    let origin = earliest(origin, entries.first().map(|e| &e.key_origin));
                    self.finish(Node::new(Value::Map(entries), origin), anchor, start);
                }
                None => {}
            },
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((_, weight)) => {
                    let weight = *weight;
                    self.alias_nodes = self.alias_nodes.saturating_add(weight.nodes);
                    if self.alias_nodes > limits::MAX_ALIAS_NODES {
                        self.limit(
                            &origin,
                            format!(
                                "aliases expand to more than {} values",
                                limits::MAX_ALIAS_NODES
                            ),
                        );
                    } else if self.charge(weight, &origin) {
                        // Checked before cloning: a bomb is refused before it exists.
                        if let Some((node, _)) = self.anchors.get(&id) {
                            let node = node.clone();
                            self.push(node);
                        }
                    }
                }
                None => {
                    self.fail(ConfigError::at(
                        &origin,
                        "",
                        "alias refers to an unknown anchor".into(),
                        None,
                    ));
                    self.push(Node::new(Value::Null, origin));
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// yaml-rust2 marks a block collection where it recognised it (after its first key), not
/// where it starts; the first child is where a person sees it begin.
fn earliest(origin: Origin, first: Option<&Origin>) -> Origin {
    match (&origin, first) {
        (
            Origin::File { line, column, .. },
            Some(
                first @ Origin::File {
                    line: l, column: c, ..
                },
            ),
        ) if (*l, *c) < (*line, *column) => first.clone(),
        _ => origin,
    }
}

fn scalar_value(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    let explicit_str = tag.is_some_and(|t| t.suffix == "str");
    if style != TScalarStyle::Plain || explicit_str {
        Value::Str { text, plain: false }
    } else {
        resolve_plain(&text)
    }
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
