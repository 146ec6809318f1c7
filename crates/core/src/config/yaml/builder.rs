//! Builds a [`Node`] tree from yaml-rust2's marked events: anchors and aliases (each
//! alias charged for what it copies), the size [`limits`], and the origin of every
//! node and key.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{resolve_plain, Entry, Node, Value};
use crate::config::{limits, ConfigError, Origin};

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

pub(super) struct Builder<'a> {
    file: &'a Path,
    stack: Vec<Frame>,
    /// Anchored nodes with their weight, charged again at each alias.
    anchors: HashMap<usize, (Node, Weight)>,
    pub(super) root: Option<Node>,
    pub(super) error: Option<ConfigError>,
    total: Weight,
    alias_nodes: usize,
    /// A limit was hit: parsing stopped and `error` says which.
    pub(super) over_limit: bool,
}

impl<'a> Builder<'a> {
    pub(super) fn new(file: &'a Path) -> Self {
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
    pub(super) fn run(&mut self, text: &str) -> Result<(), yaml_rust2::ScanError> {
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

    pub(super) fn origin(&self, mark: &Marker) -> Origin {
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
