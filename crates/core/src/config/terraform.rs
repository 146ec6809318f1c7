//! `terraform:` services (issue 18): the raw keys, their check, and the
//! `${tf.SERVICE.OUTPUT}` references other services make to their outputs.
//!
//! A reference is kept literally through interpolation (see `interpolate.rs`) and
//! replaced at run time, once the terraform service is ready (`engine/tfrun.rs`); here
//! each reference is checked to name a terraform service the referring one depends on,
//! so that `up` can never start it before the value exists.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::check::Checker;
use super::model::{RuntimeKind, Service};
use super::raw::Text;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawTerraform {
    /// The root module's directory (relative to the project).
    pub dir: Option<String>,
    /// Input variables: any YAML value (strings, numbers, lists, maps).
    pub vars: Option<BTreeMap<String, serde_yaml::Value>>,
    pub workspace: Option<String>,
    /// `-backend-config=KEY=VALUE` for `terraform init`.
    pub backend_config: Option<BTreeMap<String, Text>>,
    pub auto_apply: Option<bool>,
    pub allow_destroy: Option<bool>,
}

/// A terraform root module run as a node of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Terraform {
    /// Absolute directory of the root module (holds `.tf` files).
    pub dir: PathBuf,
    /// Input variables as JSON (written to a `-var-file` under the state dir).
    pub vars: BTreeMap<String, serde_json::Value>,
    /// `terraform workspace select -or-create`; `None`: the `default` workspace.
    pub workspace: Option<String>,
    pub backend_config: BTreeMap<String, String>,
    /// Apply a plan with changes on `up`; else `up` plans only.
    pub auto_apply: bool,
    /// `down --volumes` runs `terraform destroy`.
    pub allow_destroy: bool,
}

/// Keys of a service that mean nothing to a terraform service: refused, not ignored.
const REFUSED: &[&str] = &[
    "command",
    "workdir",
    "ports",
    "forward",
    "readiness",
    "restart",
    "oneshot",
    "watch",
    "image",
    "build",
    "chart",
    "values",
    "manifests",
    "workload",
    "replicas",
    "resources",
    "volumes",
    "dev",
    "hooks",
    "source",
    "runtime",
    "type",
];

/// The keys of `raw` set besides `terraform` that a terraform service refuses.
pub(crate) fn refused_keys(raw: &super::raw::RawService) -> Vec<&'static str> {
    let set = [
        raw.command.is_some(),
        raw.workdir.is_some(),
        raw.ports.is_some(),
        raw.forward.is_some(),
        raw.readiness.is_some(),
        raw.restart.is_some(),
        raw.oneshot.is_some(),
        raw.watch.is_some(),
        raw.image.is_some(),
        raw.build.is_some(),
        raw.chart.is_some(),
        raw.values.is_some(),
        raw.manifests.is_some(),
        raw.workload.is_some(),
        raw.replicas.is_some(),
        raw.resources.is_some(),
        raw.volumes.is_some(),
        raw.dev.is_some(),
        raw.hooks.is_some(),
        raw.source.is_some(),
        raw.runtime.is_some(),
        raw.preset.is_some(),
    ];
    REFUSED
        .iter()
        .zip(set)
        .filter_map(|(k, s)| s.then_some(*k))
        .collect()
}

/// Checks `terraform:` of the service at `at` (`spec.services[i].terraform`).
pub(crate) fn check(c: &mut Checker<'_>, at: &str, raw: RawTerraform) -> Option<Terraform> {
    let before = c.errors.len();
    let dir = match raw.dir.as_deref() {
        None => {
            c.error(
                at,
                "`terraform` has no `dir`".into(),
                Some("add `dir: ./infra` (the directory of the root module's .tf files)".into()),
            );
            None
        }
        Some(d) => {
            let resolved = c.resolve(d);
            let has_tf = std::fs::read_dir(&resolved).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".tf"))
            });
            if !has_tf {
                c.error(
                    &format!("{at}.dir"),
                    format!(
                        "`{d}` ({}) is not a directory holding .tf files; relative paths start at the project directory",
                        resolved.display()
                    ),
                    Some("point `dir` at the root module".into()),
                );
            }
            Some(resolved)
        }
    };
    let mut vars = BTreeMap::new();
    for (k, v) in raw.vars.unwrap_or_default() {
        if !is_identifier(&k) {
            c.error(
                &format!("{at}.vars.{k}"),
                format!("`{k}` is not a terraform variable name"),
                Some("letters, digits, `_` and `-`, starting with a letter or `_`".into()),
            );
            continue;
        }
        match serde_json::to_value(&v) {
            Ok(j) => {
                vars.insert(k, j);
            }
            Err(e) => c.error(
                &format!("{at}.vars.{k}"),
                format!("cannot be a terraform value: {e}"),
                None,
            ),
        }
    }
    let workspace = raw.workspace.filter(|w| !w.is_empty());
    if let Some(w) = &workspace {
        if !w
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            c.error(
                &format!("{at}.workspace"),
                format!("`{w}` is not a workspace name devenv accepts"),
                Some("use letters, digits, `-` and `_`".into()),
            );
        }
    }
    let backend_config = raw
        .backend_config
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    if c.errors.len() > before {
        return None;
    }
    Some(Terraform {
        dir: dir?,
        vars,
        workspace,
        backend_config,
        auto_apply: raw.auto_apply.unwrap_or(false),
        allow_destroy: raw.allow_destroy.unwrap_or(false),
    })
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One `${tf.SERVICE.OUTPUT}` in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRef<'a> {
    pub service: &'a str,
    pub output: &'a str,
    /// Byte range of the whole `${...}` in the string.
    pub range: std::ops::Range<usize>,
}

/// The `${tf.SERVICE.OUTPUT}` references in `text`, in order.
pub fn output_refs(text: &str) -> Vec<OutputRef<'_>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("${tf.").map(|i| i + from) {
        let body_start = start + "${tf.".len();
        let Some(close) = text[body_start..].find('}').map(|i| i + body_start) else {
            break;
        };
        if let Some((service, output)) = text[body_start..close].split_once('.') {
            if !service.is_empty() && !output.is_empty() && is_identifier(output) {
                out.push(OutputRef {
                    service,
                    output,
                    range: start..close + 1,
                });
            }
        }
        from = close + 1;
    }
    out
}

/// Whether `name` (the inside of `${...}`) is a terraform output reference, which
/// interpolation keeps for the engine.
pub(crate) fn is_output_ref(name: &str) -> bool {
    name.strip_prefix("tf.")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(s, o)| !s.is_empty() && is_identifier(o))
}

/// The strings of `svc` where references are replaced at run time: its `env` values
/// and its helm `values`' strings.
pub fn referencing_strings(svc: &Service) -> Vec<(String, &str)> {
    let mut out: Vec<(String, &str)> = svc
        .env
        .iter()
        .map(|(k, v)| (format!("env.{k}"), v.as_str()))
        .collect();
    fn walk<'a>(path: String, v: &'a serde_json::Value, out: &mut Vec<(String, &'a str)>) {
        match v {
            serde_json::Value::String(s) => out.push((path, s)),
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(format!("{path}[{i}]"), item, out);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    walk(format!("{path}.{k}"), item, out);
                }
            }
            _ => {}
        }
    }
    if let Some(values) = &svc.values {
        walk("values".into(), values, &mut out);
    }
    out
}

/// Every reference names a terraform service the referring service depends on (so
/// `up` starts it only once the outputs exist); secrets may not reference outputs
/// (their values are resolved before any node runs).
pub(crate) fn check_refs(
    c: &mut Checker<'_>,
    services: &[(usize, Service)],
    secrets: &[super::secret::Secret],
) {
    for (i, secret) in secrets.iter().enumerate() {
        for (key, value) in &secret.data {
            if !output_refs(value).is_empty() {
                c.error(
                    &format!("spec.secrets[{i}].data.{key}"),
                    format!("secret `{}` references a terraform output", secret.name),
                    Some("secrets are read before any service runs: reference the output in the service's `env` instead (a sensitive output is kept secret there too)".into()),
                );
            }
        }
    }
    for (i, svc) in services {
        for (key, text) in referencing_strings(svc) {
            for r in output_refs(text) {
                let path = format!("spec.services[{i}].{key}");
                let target = services.iter().find(|(_, s)| s.name == r.service);
                match target {
                    Some((_, t)) if t.runtime != RuntimeKind::Terraform => c.error(
                        &path,
                        format!(
                            "`${{tf.{}.{}}}` names service `{}`, which is not a terraform service",
                            r.service, r.output, r.service
                        ),
                        None,
                    ),
                    Some(_) if !svc.dependencies.iter().any(|d| d == r.service) => c.error(
                        &path,
                        format!(
                            "`${{tf.{}.{}}}` needs `{}` among the dependencies of `{}`",
                            r.service, r.output, r.service, svc.name
                        ),
                        Some(format!(
                            "add `dependencies: [{}]`: its outputs exist once it is ready",
                            r.service
                        )),
                    ),
                    Some(_) => {}
                    None => c.error(
                        &path,
                        format!("`${{tf.{}.{}}}` names no service", r.service, r.output),
                        None,
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_with_their_ranges() {
        let text = "u=${tf.infra.url};k=${tf.infra.api_key}${HOME}${tf.bad}";
        let refs = output_refs(text);
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].service, "infra");
        assert_eq!(refs[0].output, "url");
        assert_eq!(&text[refs[0].range.clone()], "${tf.infra.url}");
        assert_eq!(refs[1].output, "api_key");
        assert!(is_output_ref("tf.infra.url"));
        assert!(!is_output_ref("tf.infra"));
        assert!(!is_output_ref("HOME"));
    }
}
