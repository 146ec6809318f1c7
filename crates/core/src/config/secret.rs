//! `spec.secrets`: a secret's values written in the config (`type: kubernetes-secret`,
//! `data:`) or read at `up` from a provider (`type: external-secret`): the environment,
//! a file, a command, the OS keychain or Vault. The checked model says where the values
//! come from; `crate::secrets` reads them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::check::Checker;
use super::model::Command;
use super::names::{is_label, label_hint};
use super::raw::{RawSecret, RawSecretKind, RawSecretProvider};

/// How long a `command` provider may run unless `timeoutSeconds` says otherwise.
pub const DEFAULT_SECRET_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    pub name: String,
    /// The values: from `data:` for an inline secret; for an external one, empty in the
    /// checked config and filled by `crate::secrets::resolve` when `up` runs.
    pub data: BTreeMap<String, String>,
    pub source: SecretSource,
    /// A keyed digest of the values once read (`crate::secrets::resolve`), empty before:
    /// what tells a rotation (local services restart, pods roll) without keeping a value.
    pub revision: String,
}

impl Secret {
    /// Whether the secret may set `key`: an inline one says so; an external one's keys
    /// are known only when given in `keys`/`key`, else any key may come.
    pub fn may_set(&self, key: &str) -> bool {
        if self.data.contains_key(key) {
            return true;
        }
        match &self.source {
            SecretSource::Inline => false,
            SecretSource::Env { keys } | SecretSource::Keychain { keys, .. } => {
                keys.contains_key(key)
            }
            SecretSource::File { keys, .. } | SecretSource::Vault { keys, .. } => {
                keys.is_empty() || keys.contains_key(key)
            }
            SecretSource::Command { key: one, keys, .. } => match one {
                Some(one) => one == key,
                None => keys.is_empty() || keys.contains_key(key),
            },
        }
    }
}

/// Where a secret's values come from. `keys` maps the secret's key (the variable a
/// service sees) to the provider's name for the value; empty = every value as named.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    /// `data:` in the config.
    Inline,
    /// Variables of the client's environment (the shell that ran `devenv`), else the
    /// daemon's.
    Env { keys: BTreeMap<String, String> },
    /// A dotenv file, or a JSON object (`.json`).
    File {
        path: PathBuf,
        keys: BTreeMap<String, String>,
    },
    /// A program's output: the value of `key`, or a JSON object of values.
    Command {
        command: Command,
        key: Option<String>,
        keys: BTreeMap<String, String>,
        timeout: Duration,
    },
    /// The OS keychain: entry (service, account) for each key -> account.
    Keychain {
        service: String,
        keys: BTreeMap<String, String>,
    },
    /// Vault / OpenBao KV version 2: `GET {address}/v1/{mount}/data/{path}`.
    Vault {
        address: Option<String>,
        mount: String,
        path: String,
        token_file: Option<PathBuf>,
        keys: BTreeMap<String, String>,
    },
}

impl SecretSource {
    /// The provider's name as written in the config (`inline` for `data:`).
    pub fn provider(&self) -> &'static str {
        match self {
            SecretSource::Inline => "inline",
            SecretSource::Env { .. } => "env",
            SecretSource::File { .. } => "file",
            SecretSource::Command { .. } => "command",
            SecretSource::Keychain { .. } => "keychain",
            SecretSource::Vault { .. } => "vault",
        }
    }
}

pub(crate) fn secrets(c: &mut Checker<'_>, raw: Vec<RawSecret>) -> Vec<Secret> {
    let mut out: Vec<Secret> = Vec::new();
    for (i, secret) in raw.into_iter().enumerate() {
        let path = format!("spec.secrets[{i}]");
        let Some(name) = secret.name.clone() else {
            c.error(&path, "secret has no `name`".into(), None);
            continue;
        };
        if !is_label(&name) {
            c.error(
                &format!("{path}.name"),
                format!("`{name}` is not a valid secret name"),
                Some(label_hint(&name)),
            );
            continue;
        }
        if out.iter().any(|s| s.name == name) {
            c.error(
                &format!("{path}.name"),
                format!("secret `{name}` is defined twice"),
                None,
            );
            continue;
        }
        // A broken one is still declared (the load fails on its error), so that the
        // services using it get no second error.
        let source = source(c, &path, &name, secret.provider.is_some(), &secret)
            .unwrap_or(SecretSource::Inline);
        let data = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        out.push(Secret {
            name,
            data,
            source,
            revision: String::new(),
        });
    }
    out
}

/// The keys each provider takes besides `name`, `type`, `provider` and `keys`.
fn allowed(provider: Option<RawSecretProvider>) -> &'static [&'static str] {
    match provider {
        None => &["data"],
        Some(RawSecretProvider::Env) => &[],
        Some(RawSecretProvider::File) => &["path"],
        Some(RawSecretProvider::Command) => &["command", "key", "timeoutSeconds"],
        Some(RawSecretProvider::Keychain) => &["service"],
        Some(RawSecretProvider::Vault) => &["path", "mount", "address", "tokenFile"],
    }
}

fn provider_name(p: Option<RawSecretProvider>) -> &'static str {
    match p {
        None => "kubernetes-secret",
        Some(RawSecretProvider::Env) => "env",
        Some(RawSecretProvider::File) => "file",
        Some(RawSecretProvider::Command) => "command",
        Some(RawSecretProvider::Keychain) => "keychain",
        Some(RawSecretProvider::Vault) => "vault",
    }
}

fn source(
    c: &mut Checker<'_>,
    path: &str,
    name: &str,
    has_provider: bool,
    s: &RawSecret,
) -> Option<SecretSource> {
    match (s.kind, s.provider) {
        (Some(RawSecretKind::KubernetesSecret), Some(_)) => {
            c.error(
                &format!("{path}.provider"),
                format!("secret `{name}` is a `kubernetes-secret`: its values are in `data`, it has no provider"),
                Some("use `type: external-secret` to read the values from a provider".into()),
            );
            return None;
        }
        (Some(RawSecretKind::ExternalSecret), None) => {
            c.error(
                path,
                format!("external secret `{name}` has no `provider`"),
                Some("one of: env, file, command, keychain, vault".into()),
            );
            return None;
        }
        _ => {}
    }
    debug_assert_eq!(has_provider, s.provider.is_some());
    let given: [(&str, bool); 9] = [
        ("data", s.data.is_some()),
        ("path", s.path.is_some()),
        ("command", s.command.is_some()),
        ("key", s.key.is_some()),
        ("timeoutSeconds", s.timeout_seconds.is_some()),
        ("service", s.service.is_some()),
        ("mount", s.mount.is_some()),
        ("address", s.address.is_some()),
        ("tokenFile", s.token_file.is_some()),
    ];
    let ok = allowed(s.provider);
    let mut bad = false;
    for (key, present) in given {
        if present && !ok.contains(&key) {
            let hint = if key == "data" {
                "an external secret's values come from its provider; drop `data` or the provider"
                    .to_owned()
            } else if ok.is_empty() {
                format!("`{}` takes only `keys`", provider_name(s.provider))
            } else {
                format!(
                    "`{}` takes: {}",
                    provider_name(s.provider),
                    ok.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            c.error(
                &format!("{path}.{key}"),
                format!(
                    "`{key}` does not apply to secret `{name}` ({})",
                    provider_name(s.provider)
                ),
                Some(hint),
            );
            bad = true;
        }
    }
    if s.provider.is_none() && s.keys.is_some() {
        c.error(
            &format!("{path}.keys"),
            format!("`keys` needs a provider: secret `{name}` has its values in `data`"),
            None,
        );
        bad = true;
    }
    let keys = s.keys.clone().unwrap_or_default();
    for (k, v) in &keys {
        if k.is_empty() || v.is_empty() {
            c.error(
                &format!("{path}.keys"),
                format!("secret `{name}` has an empty name in `keys`"),
                Some("`keys: { SECRET_KEY: provider-name }`".into()),
            );
            bad = true;
        }
    }
    let needs = |c: &mut Checker<'_>, key: &str, what: &str| {
        c.error(
            path,
            format!(
                "secret `{name}` ({}) has no `{key}`",
                provider_name(s.provider)
            ),
            Some(what.to_owned()),
        );
    };
    let source = match s.provider {
        None => Some(SecretSource::Inline),
        Some(RawSecretProvider::Env) => {
            if keys.is_empty() {
                needs(
                    c,
                    "keys",
                    "`keys: { DB_PASSWORD: MY_SHELL_VAR }`: each key's value is read from that variable",
                );
                return None;
            }
            Some(SecretSource::Env { keys })
        }
        Some(RawSecretProvider::File) => match &s.path {
            Some(p) if !p.trim().is_empty() => Some(SecretSource::File {
                path: c.resolve(p),
                keys,
            }),
            _ => {
                needs(
                    c,
                    "path",
                    "`path: ./secrets.env` (dotenv) or a `.json` file, relative to the project",
                );
                return None;
            }
        },
        Some(RawSecretProvider::Command) => {
            let Some(raw) = s.command.clone() else {
                needs(
                    c,
                    "command",
                    "`command: [pass, show, shop/db]` with `key: DB_PASSWORD`, or a command printing a JSON object",
                );
                return None;
            };
            let command = c.command(&format!("{path}.command"), raw)?;
            if s.key.is_some() && s.keys.is_some() {
                c.error(
                    &format!("{path}.key"),
                    format!("secret `{name}` has both `key` and `keys`"),
                    Some(
                        "`key` names the one value a command prints; `keys` picks fields of the JSON object it prints"
                            .into(),
                    ),
                );
                return None;
            }
            if s.key.as_deref().is_some_and(str::is_empty) {
                c.error(&format!("{path}.key"), "`key` is empty".into(), None);
                return None;
            }
            let timeout = match s.timeout_seconds {
                Some(0) => {
                    c.error(
                        &format!("{path}.timeoutSeconds"),
                        "`timeoutSeconds` must be at least 1".into(),
                        None,
                    );
                    return None;
                }
                Some(n) => Duration::from_secs(n.min(3600)),
                None => DEFAULT_SECRET_COMMAND_TIMEOUT,
            };
            Some(SecretSource::Command {
                command,
                key: s.key.clone(),
                keys,
                timeout,
            })
        }
        Some(RawSecretProvider::Keychain) => {
            let Some(service) = s.service.clone().filter(|s| !s.is_empty()) else {
                needs(
                    c,
                    "service",
                    "`service: shop` with `keys: { DB_PASSWORD: db }`: the entry (service, account)",
                );
                return None;
            };
            if keys.is_empty() {
                needs(
                    c,
                    "keys",
                    "`keys: { DB_PASSWORD: db }`: each key's value is the keychain entry of that account",
                );
                return None;
            }
            Some(SecretSource::Keychain { service, keys })
        }
        Some(RawSecretProvider::Vault) => {
            let Some(vpath) = s.path.clone().filter(|p| !p.trim_matches('/').is_empty()) else {
                needs(
                    c,
                    "path",
                    "`path: shop/db`: the secret under the KV v2 `mount` (default `secret`)",
                );
                return None;
            };
            let mount = s.mount.clone().unwrap_or_else(|| "secret".into());
            if mount.trim_matches('/').is_empty() {
                c.error(&format!("{path}.mount"), "`mount` is empty".into(), None);
                return None;
            }
            if let Some(a) = &s.address {
                if !(a.starts_with("http://") || a.starts_with("https://")) {
                    c.error(
                        &format!("{path}.address"),
                        format!("`{a}` is not an http:// or https:// address"),
                        Some("like `http://127.0.0.1:8200`".into()),
                    );
                    return None;
                }
            }
            Some(SecretSource::Vault {
                address: s.address.clone(),
                mount: mount.trim_matches('/').to_owned(),
                path: vpath.trim_matches('/').to_owned(),
                token_file: s.token_file.as_deref().map(|f| c.resolve(f)),
                keys,
            })
        }
    };
    if bad {
        return None;
    }
    source
}

/// The values of a dotenv-format secrets file: the same parser as the project's `.env`,
/// whose errors name the line, never its text.
pub fn parse_dotenv_values(
    file: &std::path::Path,
    text: &str,
    process: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, super::ConfigError> {
    super::dotenv::parse(file, text, process).map(|d| d.vars)
}
