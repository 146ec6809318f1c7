//! The `vault` provider: a KV version 2 secret read over Vault's (or OpenBao's) HTTP
//! API, `GET {address}/v1/{mount}/data/{path}` with the token in `X-Vault-Token`.
//! Address and token as the `vault` CLI finds them: `VAULT_ADDR`, `VAULT_TOKEN`, else
//! the token file (`~/.vault-token` unless `tokenFile` says otherwise).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::MAX_SECRET_BYTES;

/// The whole request, connect to last byte.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);

/// A Vault read failed. Messages carry Vault's own error strings (which name paths and
/// permissions, never values), never the token or a value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("no Vault address: set VAULT_ADDR (e.g. http://127.0.0.1:8200) or `address:`")]
    NoAddress,
    #[error("no Vault token: set VAULT_TOKEN, or log in (`vault login` writes {})", .0.display())]
    NoToken(PathBuf),
    #[error("cannot read the token file {}: {source}", path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` is not a valid Vault address")]
    BadAddress(String),
    #[error("cannot reach Vault at {address}: {source}")]
    Unreachable {
        address: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("Vault at {address} did not answer within {}s", REQUEST_LIMIT.as_secs())]
    Timeout { address: String },
    #[error("Vault has no secret at {mount}/{path} (KV v2 mount `{mount}`)")]
    NotFound { mount: String, path: String },
    #[error("Vault refused to read {mount}/{path} (HTTP {status}){errors}")]
    Refused {
        mount: String,
        path: String,
        status: u16,
        /// `: ...` Vault's `errors`, or nothing.
        errors: String,
    },
    #[error("Vault's answer for {mount}/{path} is not a KV v2 secret ({detail})")]
    BadAnswer {
        mount: String,
        path: String,
        detail: String,
    },
}

pub(super) async fn read(
    address: Option<&str>,
    mount: &str,
    path: &str,
    token_file: Option<&Path>,
    vars: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, super::SecretErrorKind> {
    let var = |name: &str| {
        vars.get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    };
    let address = address
        .map(str::to_owned)
        .or_else(|| var("VAULT_ADDR"))
        .ok_or(VaultError::NoAddress)?;
    let token = match var("VAULT_TOKEN") {
        Some(t) if token_file.is_none() => t,
        _ => {
            let file = token_file.map(Path::to_path_buf).unwrap_or_else(|| {
                PathBuf::from(var("HOME").unwrap_or_default()).join(".vault-token")
            });
            match tokio::fs::read_to_string(&file).await {
                Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
                Ok(_) => return Err(VaultError::NoToken(file).into()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && token_file.is_none() => {
                    return Err(VaultError::NoToken(file).into())
                }
                Err(source) => return Err(VaultError::TokenFile { path: file, source }.into()),
            }
        }
    };
    let url = format!("{}/v1/{mount}/data/{path}", address.trim_end_matches('/'));
    let uri: http::Uri = url
        .parse()
        .map_err(|_| VaultError::BadAddress(address.clone()))?;
    let mut req = http::Request::get(uri).header("X-Vault-Token", token);
    if let Some(ns) = var("VAULT_NAMESPACE") {
        req = req.header("X-Vault-Namespace", ns);
    }
    let req = req
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|_| VaultError::BadAddress(address.clone()))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| VaultError::Unreachable {
            address: address.clone(),
            source: Box::new(e),
        })?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let fetch = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| VaultError::Unreachable {
                address: address.clone(),
                source: Box::new(e),
            })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_SECRET_BYTES)
            .collect()
            .await
            .map_err(|e| VaultError::Unreachable {
                address: address.clone(),
                source: e,
            })?
            .to_bytes();
        Ok::<_, VaultError>((status, body))
    };
    let (status, body) = tokio::time::timeout(REQUEST_LIMIT, fetch)
        .await
        .map_err(|_| VaultError::Timeout {
            address: address.clone(),
        })??;
    answer(status.as_u16(), &body, mount, path).map_err(Into::into)
}

/// The values of Vault's answer: `data.data` of a 200, else why not.
fn answer(
    status: u16,
    body: &[u8],
    mount: &str,
    path: &str,
) -> Result<BTreeMap<String, String>, VaultError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if status == 404 {
        return Err(VaultError::NotFound {
            mount: mount.into(),
            path: path.into(),
        });
    }
    if status != 200 {
        let errors = json
            .as_ref()
            .and_then(|j| j.get("errors"))
            .and_then(|e| e.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str())
                    .map(|e| e.chars().take(200).collect::<String>())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|e| !e.is_empty())
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(VaultError::Refused {
            mount: mount.into(),
            path: path.into(),
            status,
            errors,
        });
    }
    let bad = |detail: &str| VaultError::BadAnswer {
        mount: mount.into(),
        path: path.into(),
        detail: detail.into(),
    };
    let data = json
        .as_ref()
        .and_then(|j| j.pointer("/data/data"))
        .and_then(|d| d.as_object())
        .ok_or_else(|| bad("no `data.data` object; is the mount KV version 2?"))?;
    data.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            serde_json::Value::Number(n) => Ok((k.clone(), n.to_string())),
            serde_json::Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ => Err(bad(&format!(
                "value `{k}` is not a string, number or boolean"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_a_kv2_answer_and_errors_without_values() {
        let ok =
            br#"{"data":{"data":{"password":"hunter2","port":5432},"metadata":{"version":3}}}"#;
        let v = answer(200, ok, "secret", "shop/db").unwrap();
        assert_eq!(v["password"], "hunter2");
        assert_eq!(v["port"], "5432");
        let e = answer(
            403,
            br#"{"errors":["permission denied"]}"#,
            "secret",
            "shop/db",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "Vault refused to read secret/shop/db (HTTP 403): permission denied"
        );
        assert!(matches!(
            answer(404, b"{}", "secret", "x").unwrap_err(),
            VaultError::NotFound { .. }
        ));
        let kv1 = br#"{"data":{"password":"hunter2"}}"#;
        let e = answer(200, kv1, "kv", "x").unwrap_err().to_string();
        assert!(e.contains("KV version 2") && !e.contains("hunter2"), "{e}");
    }
}
