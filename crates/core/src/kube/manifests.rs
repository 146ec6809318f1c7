//! A `manifests:` directory: every YAML document of every `.yaml`/`.yml` file under it
//! (sorted by path), each remembered with its file, document number and line, so that
//! the API server's verdict on it can be located for the user.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{ENV_LABEL, MANAGED_BY, MANAGED_BY_VALUE, SERVICE_LABEL};

/// One document of a manifests directory.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: PathBuf,
    /// 1-based document number within the file.
    pub index: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    pub object: Value,
}

impl Document {
    /// `k8s/app.yaml:14 (document 2)`, relative to `base` when possible.
    pub fn location(&self, base: &Path) -> String {
        let file = self.file.strip_prefix(base).unwrap_or(&self.file);
        format!("{}:{} (document {})", file.display(), self.line, self.index)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.object["kind"].as_str().unwrap_or("?"),
            self.object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?")
        )
    }
}

/// Largest manifest file read (CRD bundles run to a few MiB; the config's own 1 MiB
/// cap would refuse real ones).
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;
/// Most bytes read from all the files of one `manifests:` path together.
pub const MAX_TOTAL_BYTES: usize = 32 * 1024 * 1024;

/// Reads a manifests directory (or a single file) through the config's bounded reader
/// (regular files only, [`MAX_FILE_BYTES`] each, [`MAX_TOTAL_BYTES`] in all; serde_yaml
/// caps nesting and alias expansion). Errors are located, one per line.
pub fn load(path: &Path, base: &Path) -> Result<Vec<Document>, String> {
    let mut files = Vec::new();
    if path.is_file() {
        files.push(path.to_path_buf());
    } else if path.is_dir() {
        collect(path, &mut files).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        files.sort();
    } else {
        return Err(format!(
            "manifests path {} does not exist",
            path.strip_prefix(base).unwrap_or(path).display()
        ));
    }
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let mut total = 0usize;
    for file in files {
        let shown = file
            .strip_prefix(base)
            .unwrap_or(&file)
            .display()
            .to_string();
        let room = MAX_FILE_BYTES.min(MAX_TOTAL_BYTES - total);
        let text = match crate::config::limits::read_text_within(&file, room) {
            Ok(text) => text,
            Err(crate::config::limits::ReadError::TooLarge(..)) if room < MAX_FILE_BYTES => {
                return Err(format!(
                    "{shown}:1: the manifests under {} exceed {} MiB in all; apply large bundles with helm or split the service",
                    path.strip_prefix(base).unwrap_or(path).display(),
                    MAX_TOTAL_BYTES / (1024 * 1024)
                ));
            }
            Err(crate::config::limits::ReadError::TooLarge(..)) => {
                return Err(format!(
                    "{shown}:1: larger than {} MiB; devenv reads manifest files of at most that size",
                    MAX_FILE_BYTES / (1024 * 1024)
                ));
            }
            Err(e) => return Err(format!("{shown}:1: {e}")),
        };
        total += text.len();
        for (index, (line, chunk)) in split_documents(&text).into_iter().enumerate() {
            let shown = Document {
                file: file.clone(),
                index: index + 1,
                line,
                object: Value::Null,
            };
            let value: Value = match serde_yaml::from_str(&chunk) {
                Ok(v) => v,
                Err(e) => {
                    let at = e.location().map(|l| line + l.line() - 1).unwrap_or(line);
                    let file_shown = file.strip_prefix(base).unwrap_or(&file).display();
                    errors.push(format!(
                        "{file_shown}:{at} (document {}): invalid YAML: {}",
                        index + 1,
                        e.to_string().lines().next().unwrap_or_default()
                    ));
                    continue;
                }
            };
            if value.is_null() {
                continue;
            }
            let items = match value.get("kind").and_then(Value::as_str) {
                Some(k) if k.ends_with("List") && value.get("items").is_some() => {
                    value["items"].as_array().cloned().unwrap_or_default()
                }
                _ => vec![value],
            };
            for object in items {
                let missing: Vec<&str> = [
                    (
                        "apiVersion",
                        object.get("apiVersion").and_then(Value::as_str),
                    ),
                    ("kind", object.get("kind").and_then(Value::as_str)),
                    (
                        "metadata.name",
                        object.pointer("/metadata/name").and_then(Value::as_str),
                    ),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.is_none().then_some(k))
                .collect();
                if !missing.is_empty() {
                    errors.push(format!(
                        "{}: not a Kubernetes object: missing {}",
                        shown.location(base),
                        missing.join(", ")
                    ));
                    continue;
                }
                docs.push(Document {
                    object,
                    ..shown.clone()
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    if docs.is_empty() {
        return Err(format!(
            "no Kubernetes objects in {}",
            path.strip_prefix(base).unwrap_or(path).display()
        ));
    }
    Ok(docs)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Splits a multi-document YAML text at `---` lines: (start line, text) per document.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") {
            if !cur.trim().is_empty() {
                docs.push((start, std::mem::take(&mut cur)));
            }
            cur.clear();
            start = i + 2;
            continue;
        }
        if cur.is_empty() && line.trim().is_empty() && docs.is_empty() && start == i + 1 {
            start = i + 2;
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    if !cur.trim().is_empty() {
        docs.push((start, cur));
    }
    docs
}

/// Adds devenv's labels to an object (and to a workload's pod template, so that logs
/// and port forwards find its pods by label).
pub fn label(object: &mut Value, env: &str, service: &str) {
    let add = |meta: &mut Value| {
        if !meta.is_object() {
            *meta = json!({});
        }
        let labels = &mut meta["labels"];
        if !labels.is_object() {
            *labels = json!({});
        }
        labels[MANAGED_BY] = json!(MANAGED_BY_VALUE);
        labels[ENV_LABEL] = json!(env);
        labels[SERVICE_LABEL] = json!(service);
    };
    add(&mut object["metadata"]);
    if is_workload(object) {
        if let Some(tmpl) = object.pointer_mut("/spec/template") {
            add(&mut tmpl["metadata"]);
        }
    }
}

/// Kinds whose rollout gates readiness.
pub fn is_workload(object: &Value) -> bool {
    matches!(
        (
            object["apiVersion"].as_str().unwrap_or(""),
            object["kind"].as_str().unwrap_or("")
        ),
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_split_with_their_lines() {
        let text = "a: 1\n---\nb: 2\nc: 3\n---\n\n--- \nd: 4\n";
        let docs = split_documents(text);
        assert_eq!(
            docs,
            vec![
                (1, "a: 1\n".to_owned()),
                (3, "b: 2\nc: 3\n".to_owned()),
                (8, "d: 4\n".to_owned())
            ]
        );
    }

    #[test]
    fn files_are_read_bounded_with_a_located_error() {
        let dir = tempfile::tempdir().unwrap();
        let k8s = dir.path().join("k8s");
        std::fs::create_dir(&k8s).unwrap();
        std::fs::write(
            k8s.join("a.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n",
        )
        .unwrap();
        let big = std::fs::File::create(k8s.join("big.yaml")).unwrap();
        big.set_len(MAX_FILE_BYTES as u64 + 1).unwrap();
        let err = load(&k8s, dir.path()).unwrap_err();
        assert!(
            err.starts_with("k8s/big.yaml:1: larger than 8 MiB"),
            "{err}"
        );
        // A FIFO would block the reader forever: refused, located.
        std::fs::remove_file(k8s.join("big.yaml")).unwrap();
        nix::unistd::mkfifo(&k8s.join("pipe.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = load(&k8s, dir.path()).unwrap_err();
        assert!(
            err.starts_with("k8s/pipe.yaml:1:") && err.contains("not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn load_locates_bad_documents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n---\nkind: ConfigMap\nmetadata: {name: two}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yml"), "apiVersion: v1\nkind: [\n").unwrap();
        let err = load(dir.path(), dir.path()).unwrap_err();
        assert!(
            err.contains("a.yaml:5 (document 2): not a Kubernetes object: missing apiVersion"),
            "{err}"
        );
        assert!(err.contains("b.yml:"), "{err}");
        assert!(err.contains("invalid YAML"), "{err}");
    }

    #[test]
    fn labels_reach_pod_templates() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"template": {"metadata": {"labels": {"app": "x"}}}}});
        label(&mut d, "shop", "platform");
        assert_eq!(d["metadata"]["labels"][SERVICE_LABEL], "platform");
        assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "x");
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"][ENV_LABEL],
            "shop"
        );
    }
}
