//! Reading external secrets (`type: external-secret`) when `up` runs: each provider's
//! values, never kept anywhere but in the running environment's memory, never in an
//! error. An error names the secret, the provider and what is missing or failed.

mod command;
mod keychain;
mod vault;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Environment, Secret, SecretSource};

/// Largest secrets file or command output read.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// A provider could not give a secret's values. The message never holds a value.
#[derive(Debug, thiserror::Error)]
#[error("secret `{secret}` ({provider}): {kind}")]
pub struct SecretError {
    pub secret: String,
    pub provider: &'static str,
    #[source]
    pub kind: SecretErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretErrorKind {
    #[error("variable `{0}` is not set in the environment `devenv` ran in (nor in the daemon's)")]
    MissingVar(String),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than {} KiB", path.display(), MAX_SECRET_BYTES / 1024)]
    FileTooLarge { path: PathBuf },
    #[error("{} is not valid: {detail}", path.display())]
    FileFormat { path: PathBuf, detail: String },
    #[error("{from} has no `{field}`")]
    MissingField { field: String, from: String },
    #[error("{from} is not a JSON object of values ({detail})")]
    NotAnObject { from: String, detail: String },
    #[error("value `{field}` of {from} is not a string, number or boolean")]
    NotAScalar { field: String, from: String },
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` is not installed or not on PATH")]
    NotFound { program: String },
    #[error("`{program}` {status}{stderr}")]
    CommandFailed {
        program: String,
        status: String,
        /// `; stderr: ...` (its last line, shortened) or nothing.
        stderr: String,
    },
    #[error("`{program}` did not finish within {}s", after.as_secs())]
    Timeout { program: String, after: Duration },
    #[error("`{program}` printed more than {} KiB", MAX_SECRET_BYTES / 1024)]
    OutputTooLarge { program: String },
    #[error("`{program}` printed nothing")]
    EmptyOutput { program: String },
    #[error("output is not UTF-8 text")]
    NotUtf8,
    #[error(transparent)]
    Keychain(#[from] keychain::KeychainError),
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
}

/// `env` with the values of every external secret a service uses read from its
/// provider (inline secrets as they are), and the revision of each secret a service
/// uses: a digest of its values keyed with `key` (see [`digest_key`]), so that nobody
/// can test guesses of a value against a revision. `vars` is the environment of the
/// client that ran `devenv`.
pub async fn resolve(
    env: &Environment,
    vars: &BTreeMap<String, String>,
    key: &[u8],
) -> Result<Environment, SecretError> {
    let mut out = env.clone();
    for secret in &mut out.secrets {
        if !env
            .services
            .iter()
            .any(|s| s.secrets.contains(&secret.name))
            && !env
                .workspaces
                .iter()
                .any(|w| w.secrets.contains(&secret.name))
        {
            continue;
        }
        if !matches!(secret.source, SecretSource::Inline) {
            secret.data =
                read(secret, &env.project_dir, vars)
                    .await
                    .map_err(|kind| SecretError {
                        secret: secret.name.clone(),
                        provider: secret.source.provider(),
                        kind,
                    })?;
        }
        secret.revision = revision(key, &secret.data);
    }
    Ok(out)
}

/// A keyed digest of `data`, 16 hex digits.
pub fn revision(key: &[u8], data: &BTreeMap<String, String>) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(key);
    for (k, v) in data {
        for part in [k, v] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key of [`resolve`]'s digests: 32 random bytes kept in `dir/secrets-digest.key`
/// (0600), made on first use, so revisions stay the same across daemon restarts.
pub fn digest_key(dir: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let file = dir.join("secrets-digest.key");
    match std::fs::read(&file) {
        Ok(k) if k.len() == 32 => return Ok(k),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut key = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    let tmp = dir.join(".secrets-digest.key.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&key)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &file)?;
    Ok(key)
}

async fn read(
    secret: &Secret,
    project_dir: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SecretErrorKind> {
    match &secret.source {
        SecretSource::Inline => Ok(secret.data.clone()),
        SecretSource::Env { keys } => keys
            .iter()
            .map(|(key, var)| {
                vars.get(var)
                    .cloned()
                    .or_else(|| std::env::var(var).ok())
                    .map(|v| (key.clone(), v))
                    .ok_or_else(|| SecretErrorKind::MissingVar(var.clone()))
            })
            .collect(),
        SecretSource::File { path, keys } => {
            let values = read_file(path, vars).await?;
            select(values, keys, &path.display().to_string())
        }
        SecretSource::Command {
            command,
            key,
            keys,
            timeout,
        } => {
            let out = command::run(command, project_dir, vars, *timeout).await?;
            match key {
                Some(key) => {
                    // One value: the output without its final line break (`pass`,
                    // `op read` and `security -w` end with one).
                    let value = out.strip_suffix('\n').unwrap_or(&out);
                    let value = value.strip_suffix('\r').unwrap_or(value);
                    if value.is_empty() {
                        return Err(SecretErrorKind::EmptyOutput {
                            program: command::program(command),
                        });
                    }
                    Ok(BTreeMap::from([(key.clone(), value.to_owned())]))
                }
                None => {
                    let from = format!("the output of `{}`", command::program(command));
                    let values = json_values(&out, &from)?;
                    select(values, keys, &from)
                }
            }
        }
        SecretSource::Keychain { service, keys } => {
            Ok(keychain::read(service.clone(), keys.clone()).await?)
        }
        SecretSource::Vault {
            address,
            mount,
            path,
            token_file,
            keys,
        } => {
            let values =
                vault::read(address.as_deref(), mount, path, token_file.as_deref(), vars).await?;
            select(values, keys, &format!("vault secret {mount}/{path}"))
        }
    }
}

/// A dotenv file, or a JSON object when the name ends in `.json`.
async fn read_file(
    path: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SecretErrorKind> {
    let read = |source| SecretErrorKind::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = tokio::fs::metadata(path).await.map_err(read)?;
    if meta.len() > MAX_SECRET_BYTES as u64 {
        return Err(SecretErrorKind::FileTooLarge {
            path: path.to_path_buf(),
        });
    }
    let bytes = tokio::fs::read(path).await.map_err(read)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretErrorKind::FileFormat {
        path: path.to_path_buf(),
        detail: "not UTF-8 text".into(),
    })?;
    if path.extension().is_some_and(|e| e == "json") {
        json_values(&text, &path.display().to_string())
    } else {
        crate::config::parse_dotenv_values(path, &text, vars).map_err(|e| {
            SecretErrorKind::FileFormat {
                path: path.to_path_buf(),
                detail: format!("line {}: {}", e.line, e.message),
            }
        })
    }
}

/// The values of a JSON object: strings, numbers and booleans as text. The output of
/// `vault kv get -format=json` (values under `data.data`) is taken as its values.
fn json_values(text: &str, from: &str) -> Result<BTreeMap<String, String>, SecretErrorKind> {
    let not_object = |detail: String| SecretErrorKind::NotAnObject {
        from: from.to_owned(),
        detail,
    };
    // serde_json's message names a line and column, never the text there.
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| not_object(format!("line {} column {}", e.line(), e.column())))?;
    let value = match value.pointer("/data/data") {
        Some(inner @ serde_json::Value::Object(_)) => inner.clone(),
        _ => value,
    };
    let serde_json::Value::Object(map) = value else {
        return Err(not_object("not an object".into()));
    };
    map.into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(SecretErrorKind::NotAScalar {
                        field: k,
                        from: from.to_owned(),
                    })
                }
            };
            Ok((k, text))
        })
        .collect()
}

/// `keys` picks and renames (secret key -> provider's field); empty = all as named.
fn select(
    mut values: BTreeMap<String, String>,
    keys: &BTreeMap<String, String>,
    from: &str,
) -> Result<BTreeMap<String, String>, SecretErrorKind> {
    if keys.is_empty() {
        return Ok(values);
    }
    keys.iter()
        .map(|(key, field)| {
            values
                .remove(field)
                .map(|v| (key.clone(), v))
                .ok_or_else(|| SecretErrorKind::MissingField {
                    field: field.clone(),
                    from: from.to_owned(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests;
