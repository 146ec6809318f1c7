//! Path -> origin lookup over the merged tree, for errors raised after deserialization
//! (when only the dotted path of the offending value is known).

use std::collections::HashMap;

use super::yaml::{Node, Value};
use super::{ConfigError, Origin};

pub(crate) struct Index {
    values: HashMap<String, Origin>,
    root: Origin,
}

pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> ``
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

impl Index {
    pub fn build(root: &Node) -> Self {
        let mut values = HashMap::new();
        fn walk(node: &Node, path: String, values: &mut HashMap<String, Origin>) {
            match &node.value {
                Value::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, format!("{path}[{i}]"), values);
                    }
                }
                Value::Map(entries) => {
                    for e in entries {
                        walk(&e.value, child(&path, &e.key), values);
                    }
                }
                _ => {}
            }
            values.insert(path, node.origin.clone());
        }
        walk(root, String::new(), &mut values);
        Self {
            values,
            root: root.origin.clone(),
        }
    }

    /// Where `path` was written, or its nearest written ancestor (a missing key is
    /// reported at the mapping that should have held it).
    pub fn origin(&self, path: &str) -> &Origin {
        let mut at = Some(path);
        while let Some(p) = at {
            if let Some(origin) = self.values.get(p) {
                return origin;
            }
            at = parent(p);
        }
        &self.root
    }

    /// Whether a value was written at exactly `path`.
    pub fn has(&self, path: &str) -> bool {
        self.values.contains_key(path)
    }

    pub fn error(&self, path: &str, message: String, hint: Option<String>) -> ConfigError {
        ConfigError::at(self.origin(path), path, message, hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        assert_eq!(parent("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }
}
