//! Terraform as devenv drives it: the command lines of each step, what it reads back
//! (`show -json` of a plan, `output -json`), and when `init` must run again. No
//! processes here: `engine/tfrun.rs` runs the steps as a node of the graph.
//!
//! Where terraform keeps its working data: `TF_DATA_DIR` under the environment's state
//! dir (`<env dir>/terraform/<service>`), not the module's `.terraform`. Two
//! environments of one project (`--env staging`) run the same module with different
//! backend configs and workspaces; one `.terraform` would make each `init` undo the
//! other's. The module's directory stays the user's: their own `terraform` commands see
//! no devenv files, and `down --volumes` has one place to clean. The state itself stays
//! where the backend puts it (the local backend: `terraform.tfstate` in the module's
//! directory), since it is the user's record of real resources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::config::Terraform;

/// Where to get terraform, for the one-line "not installed" error.
pub const INSTALL_HINT: &str =
    "install it from https://developer.hashicorp.com/terraform/install (or your package manager) and make sure it is on PATH";

/// Bytes of `show -json` / `output -json` devenv reads; larger is refused.
pub const MAX_JSON_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TfError {
    #[error("terraform is not installed (not found on PATH); {INSTALL_HINT}")]
    Missing,
    #[error("cannot run terraform {step}: {source}")]
    Spawn {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("terraform {step} failed{}", error_suffix(.error))]
    Failed {
        step: &'static str,
        /// The first `Error:` terraform printed, when there was one.
        error: Option<String>,
    },
    #[error("terraform {step} did not finish within {seconds}s")]
    TimedOut { step: &'static str, seconds: u64 },
    #[error("cannot read what terraform {step} printed: {reason}")]
    Unreadable { step: &'static str, reason: String },
    #[error("cannot prepare terraform's data dir {}: {source}", .dir.display())]
    DataDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn error_suffix(e: &Option<String>) -> String {
    e.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
}

/// The first error terraform printed in `lines` (its `-no-color` diagnostics read
/// `│ Error: summary`, or `Error: summary` without the box), without terminal escapes
/// (a provisioner's own output may have colours even under `-no-color`).
pub fn first_error(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|l| {
        let l = strip_ansi(l);
        let l = l.trim_start_matches(['│', '╷', ' ']).trim();
        l.strip_prefix("Error: ").map(str::to_owned)
    })
}

/// `text` without ANSI escape sequences (CSI such as colours, OSC such as titles and
/// links, two-byte escapes) and other control characters but tab: what goes into a
/// status message or an error is plain text.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST (ESC \).
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `TF_CLI_CONFIG_FILE` when it names a file that does not exist (relative to the
/// module's `dir`, as terraform reads it): terraform warns about it on every step and
/// then goes on without it, so devenv leaves it out of terraform's environment.
pub fn missing_cli_config(env: &BTreeMap<String, String>, dir: &Path) -> Option<String> {
    let file = env.get("TF_CLI_CONFIG_FILE")?;
    (!file.is_empty() && !dir.join(file).exists()).then(|| file.clone())
}

/// The files of one service's terraform data dir.
#[derive(Debug, Clone)]
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn of(env_dir: &Path, service: &str) -> Self {
        Self(env_dir.join("terraform").join(service))
    }
    pub fn var_file(&self) -> PathBuf {
        self.0.join("devenv.tfvars.json")
    }
    pub fn plan_file(&self) -> PathBuf {
        self.0.join("devenv.tfplan")
    }
    /// What the last successful `init` was run for ([`init_key`]).
    pub fn init_stamp(&self) -> PathBuf {
        self.0.join("devenv-init")
    }
}

/// Changes when `init` must run again: the backend config, the module's directory,
/// or its dependency lock file (a provider added or upgraded).
pub fn init_key(tf: &Terraform) -> String {
    let mut h = Md5::new();
    h.update(tf.dir.as_os_str().as_encoded_bytes());
    for (k, v) in &tf.backend_config {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    h.update([2]);
    if let Ok(lock) = std::fs::read(tf.dir.join(".terraform.lock.hcl")) {
        h.update(&lock);
    }
    format!("{:x}", h.finalize())
}

/// `terraform init`; `reconfigure` when the backend config changed since the last.
pub fn init_args(tf: &Terraform, reconfigure: bool) -> Vec<String> {
    let mut args: Vec<String> = ["init", "-input=false", "-no-color"]
        .map(String::from)
        .to_vec();
    if reconfigure {
        args.push("-reconfigure".into());
    }
    args.extend(
        tf.backend_config
            .iter()
            .map(|(k, v)| format!("-backend-config={k}={v}")),
    );
    args
}

pub fn workspace_args(workspace: &str) -> Vec<String> {
    vec![
        "workspace".into(),
        "select".into(),
        "-or-create=true".into(),
        "-no-color".into(),
        workspace.into(),
    ]
}

pub fn plan_args(dd: &DataDir) -> Vec<String> {
    vec![
        "plan".into(),
        "-detailed-exitcode".into(),
        "-input=false".into(),
        "-no-color".into(),
        "-lock-timeout=60s".into(),
        format!("-var-file={}", dd.var_file().display()),
        format!("-out={}", dd.plan_file().display()),
    ]
}

/// Applies the saved plan: exactly what was shown, nothing planned anew.
pub fn apply_args(dd: &DataDir) -> Vec<String> {
    vec![
        "apply".into(),
        "-input=false".into(),
        "-no-color".into(),
        "-lock-timeout=60s".into(),
        "-auto-approve".into(),
        dd.plan_file().display().to_string(),
    ]
}

pub fn destroy_args(dd: &DataDir) -> Vec<String> {
    vec![
        "destroy".into(),
        "-input=false".into(),
        "-no-color".into(),
        "-lock-timeout=60s".into(),
        "-auto-approve".into(),
        format!("-var-file={}", dd.var_file().display()),
    ]
}

pub fn show_plan_args(dd: &DataDir) -> Vec<String> {
    vec![
        "show".into(),
        "-json".into(),
        "-no-color".into(),
        dd.plan_file().display().to_string(),
    ]
}

pub fn output_args() -> Vec<String> {
    vec!["output".into(), "-json".into(), "-no-color".into()]
}

/// The `-var-file` contents: every `vars` entry as JSON.
pub fn var_file(tf: &Terraform) -> Vec<u8> {
    serde_json::to_vec_pretty(&tf.vars).unwrap_or_else(|_| b"{}".to_vec())
}

/// What a plan would do, counted from `terraform show -json PLAN`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanSummary {
    pub add: u32,
    pub change: u32,
    pub destroy: u32,
    /// Root outputs that would change.
    pub outputs: u32,
}

impl PlanSummary {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `1 to add, 0 to change, 0 to destroy` (terraform's own words), or `no changes`.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "no changes".into();
        }
        let mut s = format!(
            "{} to add, {} to change, {} to destroy",
            self.add, self.change, self.destroy
        );
        if self.outputs > 0 {
            s.push_str(&format!(
                ", {} output{} to change",
                self.outputs,
                if self.outputs == 1 { "" } else { "s" }
            ));
        }
        s
    }

    /// After apply: `1 added, 0 changed, 0 destroyed`.
    pub fn describe_applied(&self) -> String {
        format!(
            "{} added, {} changed, {} destroyed",
            self.add, self.change, self.destroy
        )
    }

    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let mut s = Self::default();
        let changes = v
            .get("resource_changes")
            .and_then(|r| r.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for rc in changes {
            let actions: Vec<&str> = rc
                .pointer("/change/actions")
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            match actions.as_slice() {
                ["create"] => s.add += 1,
                ["update"] => s.change += 1,
                ["delete"] => s.destroy += 1,
                // A replacement: counted as terraform counts it.
                ["delete", "create"] | ["create", "delete"] => {
                    s.add += 1;
                    s.destroy += 1;
                }
                _ => {}
            }
        }
        if let Some(outputs) = v.get("output_changes").and_then(|o| o.as_object()) {
            s.outputs = outputs
                .values()
                .filter(|o| {
                    o.pointer("/actions")
                        .and_then(|a| a.as_array())
                        .is_some_and(|a| a.iter().any(|x| x.as_str() != Some("no-op")))
                })
                .count() as u32;
        }
        Ok(s)
    }
}

/// One root output. A sensitive one's value is a secret: never printed, logged or
/// stored; it only reaches the environment of the services that reference it.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// A string as is; numbers and booleans as written; lists and maps as JSON.
    pub value: String,
    pub sensitive: bool,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.sensitive {
            "(sensitive)"
        } else {
            &self.value
        };
        f.debug_struct("Output")
            .field("value", &shown)
            .field("sensitive", &self.sensitive)
            .finish()
    }
}

/// `terraform output -json`, by name.
pub fn parse_outputs(json: &[u8]) -> Result<BTreeMap<String, Output>, String> {
    let v: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(v.into_iter()
        .map(|(name, o)| {
            let sensitive = o
                .get("sensitive")
                .and_then(|s| s.as_bool())
                .unwrap_or(false);
            let value = match o.get("value") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (name, Output { value, sensitive })
        })
        .collect())
}

/// `text` with each `${tf.SERVICE.OUTPUT}` replaced by `lookup(service, output)`;
/// the first reference that has no value is the error.
pub fn substitute<'a>(
    text: &'a str,
    lookup: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<std::borrow::Cow<'a, str>, crate::config::OutputRef<'a>> {
    let refs = crate::config::output_refs(text);
    if refs.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in refs {
        let Some(value) = lookup(r.service, r.output) else {
            return Err(r);
        };
        out.push_str(&text[at..r.range.start]);
        out.push_str(&value);
        at = r.range.end;
    }
    out.push_str(&text[at..]);
    Ok(std::borrow::Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_json_is_counted() {
        let json = br#"{"resource_changes":[
            {"change":{"actions":["create"]}},
            {"change":{"actions":["create"]}},
            {"change":{"actions":["update"]}},
            {"change":{"actions":["delete","create"]}},
            {"change":{"actions":["no-op"]}}],
          "output_changes":{"a":{"actions":["create"]},"b":{"actions":["no-op"]}}}"#;
        let s = PlanSummary::parse(json).unwrap();
        assert_eq!(
            s,
            PlanSummary {
                add: 3,
                change: 1,
                destroy: 1,
                outputs: 1
            }
        );
        assert_eq!(
            s.describe(),
            "3 to add, 1 to change, 1 to destroy, 1 output to change"
        );
        assert!(PlanSummary::parse(b"{}").unwrap().is_empty());
        assert!(PlanSummary::parse(b"not json").is_err());
    }

    #[test]
    fn outputs_keep_sensitivity_and_hide_it_from_debug() {
        let json = br#"{"url":{"sensitive":false,"type":"string","value":"http://x"},
            "port":{"sensitive":false,"type":"number","value":8080},
            "token":{"sensitive":true,"type":"string","value":"s3cr3t"}}"#;
        let o = parse_outputs(json).unwrap();
        assert_eq!(o["url"].value, "http://x");
        assert_eq!(o["port"].value, "8080");
        assert!(o["token"].sensitive);
        assert!(!format!("{o:?}").contains("s3cr3t"));
    }

    #[test]
    fn references_are_substituted_or_the_missing_one_named() {
        let lookup = |s: &str, o: &str| (s == "infra" && o == "url").then(|| "http://x".into());
        assert_eq!(
            substitute("U=${tf.infra.url}/p", &lookup).unwrap(),
            "U=http://x/p"
        );
        let missing = substitute("${tf.infra.nope}", &lookup).unwrap_err();
        assert_eq!(missing.output, "nope");
    }

    #[test]
    fn escapes_are_stripped_from_errors() {
        assert_eq!(
            strip_ansi("\u{1b}[31;1mError:\u{1b}[0m bad \u{1b}]8;;http://x\u{7}link\u{1b}]8;;\u{1b}\\ end\r"),
            "Error: bad link end"
        );
        let lines =
            ["\u{1b}[31m│\u{1b}[0m \u{1b}[1mError: \u{1b}[0mboom \u{1b}[33mhere".to_string()];
        assert_eq!(first_error(&lines).as_deref(), Some("boom here"));
    }

    #[test]
    fn a_cli_config_file_that_does_not_exist_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rc"), "").unwrap();
        let env = |v: &str| BTreeMap::from([("TF_CLI_CONFIG_FILE".to_string(), v.to_string())]);
        assert_eq!(
            missing_cli_config(&env("/nonexistent/.terraformrc"), dir.path()).as_deref(),
            Some("/nonexistent/.terraformrc")
        );
        assert_eq!(missing_cli_config(&env("rc"), dir.path()), None);
        assert_eq!(missing_cli_config(&BTreeMap::new(), dir.path()), None);
    }

    #[test]
    fn the_first_error_is_found_in_boxed_diagnostics() {
        let lines = [
            "╷".to_string(),
            "│ Error: Invalid value for variable".to_string(),
            "│ ".to_string(),
        ];
        assert_eq!(
            first_error(&lines).as_deref(),
            Some("Invalid value for variable")
        );
    }
}
