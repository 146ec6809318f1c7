//! Finding the project and stacking its config layers, lowest first: built-in defaults,
//! user config, project config, environment file, `DEVENV_*` variables.
//!
//! Merging keeps every node's origin, so `devenv config show --origin` and every error can
//! point at the layer that actually supplied a value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::schema;
use super::yaml::{self, Entry, Node, Value};
use super::{limits, ConfigError, LoadRequest, Origin};

/// Where the project lives and which file defined it.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub dir: PathBuf,
    pub config_file: PathBuf,
}

const CONFIG_NAMES: [&str; 2] = ["config.yml", "config.yaml"];

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn whole_file_error(file: &Path, message: String, hint: Option<String>) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        key: String::new(),
        message,
        hint,
    }
}

/// Resolves the project: `-f FILE` wins, otherwise the nearest `.devenv/config.yml` at or
/// above `start_dir`, the way git finds `.git`.
pub(crate) fn discover(req: &LoadRequest) -> Result<Project, ConfigError> {
    if let Some(file) = &req.config_file {
        let file = absolute(file);
        if !file.is_file() {
            return Err(whole_file_error(
                &file,
                format!("config file {} does not exist", file.display()),
                None,
            ));
        }
        let parent = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if parent.file_name().is_some_and(|n| n == ".devenv") {
            parent.parent().map(Path::to_path_buf).unwrap_or(parent)
        } else {
            parent
        };
        return Ok(Project {
            dir,
            config_file: file,
        });
    }
    let start = absolute(&req.start_dir);
    for dir in start.ancestors() {
        for name in CONFIG_NAMES {
            let candidate = dir.join(".devenv").join(name);
            if candidate.is_file() {
                return Ok(Project {
                    dir: dir.to_path_buf(),
                    config_file: candidate,
                });
            }
        }
    }
    Err(whole_file_error(
        &start,
        format!(
            "no .devenv/config.yml found in {} or any parent",
            start.display()
        ),
        Some("run `devenv init` to create one, or pass -f FILE".into()),
    ))
}

fn read_layer(file: &Path) -> Result<Node, ConfigError> {
    let text = limits::read_text(file).map_err(|e| {
        let hint = matches!(e, limits::ReadError::TooLarge(..)).then(limits::size_hint);
        whole_file_error(file, e.to_string(), hint)
    })?;
    yaml::parse(file, &text)
}

/// The defaults layer holds only what has a context-free default; defaults that depend on
/// other values (namespace, a probe's port) are filled in while checking.
fn defaults() -> Node {
    let services = Node::new(Value::Seq(Vec::new()), Origin::Default);
    let spec = Node::new(
        Value::Map(vec![Entry {
            key: "services".into(),
            key_origin: Origin::Default,
            value: services,
        }]),
        Origin::Default,
    );
    Node::new(
        Value::Map(vec![Entry {
            key: "spec".into(),
            key_origin: Origin::Default,
            value: spec,
        }]),
        Origin::Default,
    )
}

fn env_file(project: &Project, name: &str) -> Result<PathBuf, ConfigError> {
    let dir = project.dir.join(".devenv").join("environments");
    let valid =
        !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\']) && name != "..";
    if valid {
        for ext in ["yml", "yaml"] {
            let file = dir.join(format!("{name}.{ext}"));
            if file.is_file() {
                return Ok(file);
            }
        }
    }
    let mut available: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let ext = path.extension()?.to_str()?;
            if ext == "yml" || ext == "yaml" {
                Some(path.file_stem()?.to_string_lossy().into_owned())
            } else {
                None
            }
        })
        .collect();
    available.sort();
    available.dedup();
    let file = dir.join(format!("{name}.yml"));
    let hint = if available.is_empty() {
        format!(
            "no environments are defined; create {} to add one",
            file.display()
        )
    } else {
        format!("available environments: {}", available.join(", "))
    };
    Err(whole_file_error(
        &file,
        format!(
            "environment `{name}` not found: {} does not exist",
            file.display()
        ),
        Some(hint),
    ))
}

/// Reads and merges every file layer. The `DEVENV_*` layer is applied separately by
/// [`apply_env_overrides`] because it comes from variables, not files.
pub(crate) fn file_layers(req: &LoadRequest, project: &Project) -> Result<Node, ConfigError> {
    let project_layer = read_layer(&project.config_file)?;
    // Problems with the file as a whole (no apiVersion) belong to the project file even
    // when a user config was merged first.
    let root_origin = project_layer.origin.clone();
    let mut merged = Node::empty_map(root_origin.clone());
    if let Some(user) = &req.user_config {
        if user.is_file() {
            merge(&mut merged, read_layer(user)?, "");
        }
    }
    merge(&mut merged, project_layer, "");
    if let Some(name) = &req.env_name {
        let file = env_file(project, name)?;
        merge(&mut merged, read_layer(&file)?, "");
    }
    Ok(finish_layers(merged, root_origin))
}

/// The tree of a project file read alone (no other layer), as [`file_layers`] builds it.
pub(crate) fn single_layer(layer: Node) -> Node {
    let root_origin = layer.origin.clone();
    let mut merged = Node::empty_map(root_origin.clone());
    merge(&mut merged, layer, "");
    finish_layers(merged, root_origin)
}

fn finish_layers(mut merged: Node, root_origin: Origin) -> Node {
    // Filling in afterwards is the same as merging the defaults first (they never
    // override anything), but keeps the person's key order in `config show`.
    fill(&mut merged, defaults());
    merged.origin = root_origin;
    if let Value::Map(entries) = &mut merged.value {
        entries.sort_by_key(|e| {
            ["apiVersion", "kind", "metadata", "spec"]
                .iter()
                .position(|k| *k == e.key)
                .unwrap_or(usize::MAX)
        });
    }
    merged
}

/// Adds the keys of `defaults` that `base` lacks, recursively through mappings.
fn fill(base: &mut Node, defaults: Node) {
    if let (Value::Map(entries), Value::Map(defaults)) = (&mut base.value, defaults.value) {
        for d in defaults {
            match entries.iter_mut().find(|e| e.key == d.key) {
                Some(existing) => fill(&mut existing.value, d.value),
                None => entries.push(d),
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn service_name(node: &Node) -> Option<&str> {
    node.get("name").and_then(Node::as_str)
}

/// Maps merge key by key; `spec.services` merges by service name so an environment file
/// can tweak one service without restating the list; every other list is replaced whole,
/// because merging e.g. `ports` element-wise has no obvious meaning.
pub(crate) fn merge(base: &mut Node, over: Node, path: &str) {
    let Node { value, origin } = over;
    match (&mut base.value, value) {
        (Value::Map(base_entries), Value::Map(over_entries)) => {
            if base.origin == Origin::Default {
                base.origin = origin;
            }
            for entry in over_entries {
                let child = join(path, &entry.key);
                match base_entries.iter_mut().find(|b| b.key == entry.key) {
                    Some(existing) => {
                        existing.key_origin = entry.key_origin;
                        merge(&mut existing.value, entry.value, &child);
                    }
                    None => base_entries.push(entry),
                }
            }
        }
        (Value::Seq(base_items), Value::Seq(over_items)) if path == "spec.services" => {
            if base.origin == Origin::Default {
                base.origin = origin;
            }
            // Only earlier layers are matched: two same-named services in one file are a
            // duplicate for the checker to report, not something to merge.
            let earlier = base_items.len();
            for item in over_items {
                let target = service_name(&item).and_then(|name| {
                    base_items[..earlier]
                        .iter_mut()
                        .find(|b| service_name(b) == Some(name))
                });
                match target {
                    Some(existing) => merge(existing, item, "spec.services[]"),
                    None => base_items.push(item),
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.origin = origin;
        }
    }
}

/// `SNAKE_CASE` -> `camelCase`, so `INITIAL_DELAY_SECONDS` addresses `initialDelaySeconds`.
fn camel(segment: &str) -> String {
    let lower = segment.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for (i, part) in lower.split('_').enumerate() {
        let mut chars = part.chars();
        match chars.next() {
            Some(first) if i > 0 => {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
            _ => out.push_str(part),
        }
    }
    out
}

/// The key a `DEVENV_*` path segment names in the mapping at `path`: a key already there
/// or one the schema allows, matched regardless of case and `_` (`TIMEOUTSECONDS` and
/// `TIMEOUT_SECONDS` both name `timeoutSeconds`); otherwise, in a mapping of free keys
/// (`env`), the segment as written; else its camelCase form, which the checker reports
/// as an unknown key with a suggestion.
fn map_key(node: &Node, raw: &str, path: &str) -> String {
    if let Value::Map(entries) = &node.value {
        if let Some(e) = entries.iter().find(|e| schema::segment_names(raw, &e.key)) {
            return e.key.clone();
        }
    }
    match schema::keys_at(&schema::shape(path)) {
        Some(keys) => keys
            .iter()
            .find(|k| schema::segment_names(raw, k))
            .map_or_else(|| camel(raw), |k| (*k).to_owned()),
        None => raw.to_owned(),
    }
}

/// Applies `DEVENV_A__B__C=value` as `a.b.c: value`. Only names with `__` are config
/// paths: the others (`DEVENV_SOCKET`, `DEVENV_DATA_DIR`) configure the tools themselves.
pub(crate) fn apply_env_overrides(
    root: &mut Node,
    vars: &BTreeMap<String, String>,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("DEVENV_") else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let origin = Origin::EnvVar(name.clone());
        let segments: Vec<&str> = rest.split("__").collect();
        if segments.iter().any(|s| s.is_empty()) {
            errors.push(ConfigError::at(
                &origin,
                "",
                format!("`{name}` has an empty path segment"),
                Some(
                    "separate keys with exactly two underscores, e.g. DEVENV_METADATA__NAME".into(),
                ),
            ));
            continue;
        }
        let value = match yaml::parse_value(raw, &origin) {
            Ok(value) => value,
            Err(message) => {
                errors.push(ConfigError::at(&origin, "", message, None));
                continue;
            }
        };
        if let Err(message) = set_path(root, &segments, value, &origin, String::new()) {
            errors.push(ConfigError::at(&origin, "", message, None));
        }
    }
    errors
}

fn set_path(
    node: &mut Node,
    segments: &[&str],
    value: Node,
    origin: &Origin,
    path: String,
) -> Result<(), String> {
    let Some((raw, rest)) = segments.split_first() else {
        *node = value;
        return Ok(());
    };
    if let Value::Seq(items) = &mut node.value {
        // Services are addressed by name (`DEVENV_SPEC__SERVICES__API__RESTART`) because
        // their position is an accident of the file; any list also takes an index.
        let index = raw.parse::<usize>().ok().or_else(|| {
            let name = raw.to_lowercase().replace('_', "-");
            (path == "spec.services")
                .then(|| items.iter().position(|n| service_name(n) == Some(&name)))
                .flatten()
        });
        let Some(index) = index.filter(|i| *i < items.len()) else {
            return Err(format!("`{path}` is a list with no entry `{raw}`"));
        };
        let child = format!("{path}[{index}]");
        return set_path(&mut items[index], rest, value, origin, child);
    }
    let key = map_key(node, raw, &path);
    let child = join(&path, &key);
    if !matches!(node.value, Value::Map(_)) {
        *node = Node::empty_map(origin.clone());
    }
    if let Value::Map(entries) = &mut node.value {
        let position = match entries.iter().position(|e| e.key == key) {
            Some(p) => p,
            None => {
                entries.push(Entry {
                    key,
                    key_origin: origin.clone(),
                    value: Node::new(Value::Null, origin.clone()),
                });
                entries.len() - 1
            }
        };
        entries[position].key_origin = origin.clone();
        set_path(&mut entries[position].value, rest, value, origin, child)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_segments() {
        assert_eq!(camel("INITIAL_DELAY_SECONDS"), "initialDelaySeconds");
        assert_eq!(camel("METADATA"), "metadata");
        assert_eq!(camel("API_VERSION"), "apiVersion");
    }

    #[test]
    fn lists_other_than_services_are_replaced() {
        let mut base = yaml::parse(Path::new("a"), "x: {ports: [1, 2]}").expect("a");
        let over = yaml::parse(Path::new("b"), "x: {ports: [3]}").expect("b");
        merge(&mut base, over, "");
        let ports = base.get("x").and_then(|x| x.get("ports")).expect("ports");
        assert_eq!(
            ports.to_serde(),
            serde_yaml::from_str::<serde_yaml::Value>("[3]").expect("yaml")
        );
    }

    #[test]
    fn env_override_reaches_into_services_by_name_and_index() {
        let mut root = yaml::parse(
            Path::new("a"),
            "spec: {services: [{name: my-api, ports: [1]}]}",
        )
        .expect("a");
        let vars = BTreeMap::from([
            (
                "DEVENV_SPEC__SERVICES__MY_API__RESTART".to_owned(),
                "always".to_owned(),
            ),
            (
                "DEVENV_SPEC__SERVICES__0__PORTS".to_owned(),
                "[8000, 8001]".to_owned(),
            ),
            ("DEVENV_SOCKET".to_owned(), "/ignored".to_owned()),
        ]);
        assert_eq!(apply_env_overrides(&mut root, &vars), Vec::new());
        let expected: serde_yaml::Value = serde_yaml::from_str(
            "spec: {services: [{name: my-api, ports: [8000, 8001], restart: always}]}",
        )
        .expect("yaml");
        assert_eq!(root.to_serde(), expected);
    }

    #[test]
    fn env_override_into_missing_list_entry_is_an_error() {
        let mut root = yaml::parse(Path::new("a"), "spec: {services: []}").expect("a");
        let vars = BTreeMap::from([(
            "DEVENV_SPEC__SERVICES__WEB__IMAGE".to_owned(),
            "x".to_owned(),
        )]);
        let errors = apply_env_overrides(&mut root, &vars);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].file,
            PathBuf::from("$DEVENV_SPEC__SERVICES__WEB__IMAGE")
        );
        assert!(
            errors[0].message.contains("no entry `WEB`"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn env_override_segments_match_camel_case_keys_case_insensitively() {
        let mut root = yaml::parse(
            Path::new("a"),
            "spec: {services: [{name: api, readiness: {tcp: {port: 1}, periodSeconds: 1}, env: {Mixed_Case: a}}]}",
        )
        .expect("a");
        let vars = BTreeMap::from([
            (
                "DEVENV_SPEC__SERVICES__API__READINESS__TIMEOUTSECONDS".to_owned(),
                "9".to_owned(),
            ),
            (
                "DEVENV_SPEC__SERVICES__API__READINESS__PERIODSECONDS".to_owned(),
                "2".to_owned(),
            ),
            (
                "DEVENV_SPEC__SERVICES__API__ENV__LOG_LEVEL".to_owned(),
                "debug".to_owned(),
            ),
            (
                "DEVENV_SPEC__SERVICES__API__ENV__MIXED_CASE".to_owned(),
                "b".to_owned(),
            ),
        ]);
        assert_eq!(apply_env_overrides(&mut root, &vars), Vec::new());
        let expected: serde_yaml::Value = serde_yaml::from_str(
            "spec: {services: [{name: api, readiness: {tcp: {port: 1}, periodSeconds: 2, timeoutSeconds: 9}, env: {Mixed_Case: b, LOG_LEVEL: debug}}]}",
        )
        .expect("yaml");
        assert_eq!(root.to_serde(), expected);
    }
}
