//! A serde `Deserializer` over the located tree.
//!
//! Deserializing straight from [`Node`]s (rather than through `serde_yaml::Value`) means
//! every serde error is born knowing the node it is about, and arrives as structured data
//! (`unknown_field` with the valid names, `invalid_type` with what was found), so messages
//! and "did you mean" hints never depend on parsing serde's error text.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;

use super::yaml::{Entry, Node, Value};
use super::{suggest, ConfigError, Origin};

#[derive(Debug)]
pub(crate) enum Kind {
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    UnknownVariant {
        variant: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    InvalidType {
        found: &'static str,
        expected: String,
    },
    InvalidValue {
        expected: String,
    },
    Custom(String),
}

#[derive(Debug)]
pub(crate) struct DeError {
    kind: Kind,
    at: Option<(String, Origin)>,
}

impl DeError {
    fn new(kind: Kind) -> Self {
        Self { kind, at: None }
    }

    /// The innermost node wins: errors bubble outwards and each level only fills in a
    /// location when none is known yet.
    fn locate(mut self, path: &str, origin: &Origin) -> Self {
        if self.at.is_none() {
            self.at = Some((path.to_owned(), origin.clone()));
        }
        self
    }

    pub fn into_config_error(self, fallback: &Origin) -> ConfigError {
        let (path, origin) = self.at.unwrap_or_else(|| (String::new(), fallback.clone()));
        let (message, hint) = match self.kind {
            Kind::UnknownField { field, expected } => (
                format!("unknown key `{field}`"),
                Some(suggest::did_you_mean(
                    &field,
                    expected.iter().copied(),
                    "valid keys here",
                )),
            ),
            Kind::UnknownVariant { variant, expected } => (
                format!(
                    "unknown value `{variant}`, expected one of {}",
                    suggest::ticked(expected.iter().copied())
                ),
                suggest::closest(&variant, expected.iter().copied())
                    .map(|s| format!("did you mean `{s}`?")),
            ),
            Kind::MissingField(field) => (format!("missing required key `{field}`"), None),
            Kind::InvalidType { found, expected } => {
                let hint = if expected.starts_with("a list") && found == "a string" {
                    Some("write a list, e.g. `[value]` or one `- value` per line".to_owned())
                } else if expected == "a mapping" && found != "a list" {
                    mapping_hint(&path)
                } else {
                    None
                };
                (format!("expected {expected}, found {found}"), hint)
            }
            Kind::InvalidValue { expected } => (format!("expected {expected}"), None),
            Kind::Custom(message) => (message, None),
        };
        ConfigError::at(&origin, &path, message, hint)
    }
}

/// The mapping a shorthand value should have been, for the places people write one.
fn mapping_hint(path: &str) -> Option<String> {
    let last = path.rsplit('.').next().unwrap_or(path);
    let example = match last {
        "exec" if path.contains(".readiness.") => "exec: {command: \"...\"}",
        "http" => "http: {path: /, port: 8000}",
        "tcp" => "tcp: {port: 5432}",
        "log" => "log: {pattern: \"listening\"}",
        "readiness" => "readiness: {http: {path: /, port: 8000}}",
        "watch" => "watch: {paths: [./src]}",
        "build" => "build: {context: ./web}",
        _ => return None,
    };
    Some(format!("this key takes a mapping, e.g. `{example}`"))
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)
    }
}

impl std::error::Error for DeError {}

/// Says what serde expected in the words a YAML author uses.
fn describe_expected(exp: &dyn de::Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a borrowed string" => "a string".into(),
        _ if text.starts_with("struct ") => "a mapping".into(),
        _ => text,
    }
}

/// What was found, never echoing the value: it might be a secret.
fn describe_unexpected(unexp: &Unexpected<'_>) -> &'static str {
    match unexp {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Unit | Unexpected::Option => "nothing (null)",
        Unexpected::Seq => "a list",
        Unexpected::Map => "a mapping",
        _ => "a value of another kind",
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(Kind::Custom(msg.to_string()))
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(Kind::InvalidType {
            found: describe_unexpected(&unexp),
            expected: describe_expected(exp),
        })
    }

    fn invalid_value(_unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(Kind::InvalidValue {
            expected: describe_expected(exp),
        })
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self::new(Kind::UnknownField {
            field: field.to_owned(),
            expected,
        })
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::new(Kind::UnknownVariant {
            variant: variant.to_owned(),
            expected,
        })
    }

    fn missing_field(field: &'static str) -> Self {
        Self::new(Kind::MissingField(field))
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn unexpected(node: &Node) -> Unexpected<'_> {
    match &node.value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Int(i) => Unexpected::Signed(*i),
        Value::Float(f) => Unexpected::Float(*f),
        Value::Str { text, .. } => Unexpected::Str(text),
        Value::Seq(_) => Unexpected::Seq,
        Value::Map(_) => Unexpected::Map,
    }
}

/// Deserializes `T` from `node`, whose dotted path is `path`.
pub(crate) fn from_node<'de, T: de::Deserialize<'de>>(
    node: &'de Node,
    path: &str,
) -> Result<T, ConfigError> {
    T::deserialize(NodeDe {
        node,
        path: path.to_owned(),
    })
    .map_err(|e| e.into_config_error(&node.origin))
}

pub(crate) struct NodeDe<'de> {
    node: &'de Node,
    path: String,
}

impl<'de> NodeDe<'de> {
    fn locate(&self, e: DeError) -> DeError {
        e.locate(&self.path, &self.node.origin)
    }

    /// A quoted number is taken as a number where one is wanted, because interpolation
    /// inside a flow list must be quoted: `ports: ["${API_PORT}"]`.
    fn number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Value::Str { text, .. } = &self.node.value else {
            return self.deserialize_any_inner(visitor);
        };
        let result = if let Ok(i) = text.trim().parse::<i64>() {
            visitor.visit_i64(i)
        } else if let Some(f) = text.trim().parse::<f64>().ok().filter(|f| f.is_finite()) {
            visitor.visit_f64(f)
        } else {
            return self.deserialize_any_inner(visitor);
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_any_inner<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str { text, .. } => visitor.visit_borrowed_str(text),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                index: 0,
                path: &self.path,
            }),
            Value::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                value: None,
                path: &self.path,
            }),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none().map_err(|e| self.locate(e)),
            _ => visitor.visit_some(self),
        }
    }

    /// A number or boolean where a string is wanted is taken as its text: `image: 1.27`
    /// style typos in YAML's typing should not be a config error.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = match &self.node.value {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return self.deserialize_any(visitor),
        };
        visitor.visit_string(text).map_err(|e| self.locate(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    /// Enums are written `restart` (a unit variant) or `{exec: ...}` (one key naming the
    /// variant), the same shapes serde_yaml accepts.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Str { text, .. } => visitor.visit_enum(text.as_str().into_deserializer()),
            Value::Map(entries) if entries.len() == 1 => visitor.visit_enum(EnumDe {
                entry: &entries[0],
                path: &self.path,
            }),
            _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    /// Only a mapping is a struct: serde would also accept a list of field values, which
    /// in a config file is always a mistake.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Map(_) => self.deserialize_any(visitor),
            _ => Err(self.locate(de::Error::invalid_type(unexpected(self.node), &visitor))),
        }
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number(visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i128 u8 u16 u128 f32 char bytes byte_buf
        unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct SeqDe<'a, 'de> {
    items: std::slice::Iter<'de, Node>,
    index: usize,
    path: &'a str,
}

impl<'de> SeqAccess<'de> for SeqDe<'_, 'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe { node, path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a, 'de> {
    entries: std::slice::Iter<'de, Entry>,
    value: Option<&'de Entry>,
    path: &'a str,
}

impl<'de> MapAccess<'de> for MapDe<'_, 'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        let path = child(self.path, &entry.key);
        seed.deserialize(KeyDe(&entry.key))
            .map(Some)
            .map_err(|e| e.locate(&path, &entry.key_origin))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.value.take() else {
            return Err(de::Error::custom("value requested before its key"));
        };
        seed.deserialize(NodeDe {
            node: &entry.value,
            path: child(self.path, &entry.key),
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct KeyDe<'de>(&'de str);

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_str(self.0)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct EnumDe<'a, 'de> {
    entry: &'de Entry,
    path: &'a str,
}

impl<'de> EnumAccess<'de> for EnumDe<'_, 'de> {
    type Error = DeError;
    type Variant = NodeDe<'de>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, NodeDe<'de>), DeError> {
        let path = child(self.path, &self.entry.key);
        let variant = seed
            .deserialize(KeyDe(&self.entry.key))
            .map_err(|e| e.locate(&path, &self.entry.key_origin))?;
        Ok((
            variant,
            NodeDe {
                node: &self.entry.value,
                path,
            },
        ))
    }
}

impl<'de> VariantAccess<'de> for NodeDe<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.node.value {
            Value::Null => Ok(()),
            _ => Err(self.locate(DeError::new(Kind::InvalidType {
                found: self.node.kind_name(),
                expected: "nothing after this option".into(),
            }))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}
