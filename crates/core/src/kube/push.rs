//! Pushing an image (an OCI image layout tarball, see [`super::ocilayout`]) to
//! `spec.cluster.image.registry` with the `oci-client` crate: no Docker engine or
//! CLI needed, token and basic auth handled by the crate. Blobs stream out of the tar
//! (bounded memory); a blob the registry has is skipped, and an image whose manifest
//! the registry has under its tag already pushes nothing.
//!
//! Credentials, first found wins, never printed or stored: `DEVENV_REGISTRY_USERNAME`
//! and `DEVENV_REGISTRY_PASSWORD` in the client's environment, else the `auths` entry
//! for the registry in the docker config (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), else anonymous.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use tokio::io::AsyncSeekExt as _;

use super::ocilayout::{Blob, Layout, LayoutError};
use crate::config::ImageRegistry;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// No byte from the registry for this long: it is gone.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
const CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("cannot reach the image registry {registry} ({scheme}): {source}")]
    Unreachable {
        registry: String,
        scheme: &'static str,
        #[source]
        source: OciDistributionError,
    },
    #[error("the image registry {registry} refused the credentials{from}: {source}")]
    Denied {
        registry: String,
        /// Where the credentials came from (never the credentials).
        from: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("pushing {what} to {registry} failed: {source}")]
    Push {
        registry: String,
        what: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("cannot read the docker config {path}: {why}")]
    DockerConfig { path: PathBuf, why: String },
}

impl PushError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::Unreachable { registry, scheme, .. } => format!(
                "is a registry running at {registry}? Start it, or fix `spec.cluster.image.registry`{}",
                if *scheme == "https" {
                    "; a registry that speaks plain HTTP off loopback needs `insecure: true`"
                } else {
                    ""
                }
            ),
            Self::Denied { .. } => "log in: set DEVENV_REGISTRY_USERNAME and DEVENV_REGISTRY_PASSWORD, or `docker login` (an `auths` entry in ~/.docker/config.json)".into(),
            Self::Layout(_) => "`build.tarball` must be an OCI image layout in a tar (index.json, blobs/sha256/...), e.g. from `buildah push IMAGE oci-archive:FILE` or `docker save`".into(),
            Self::Push { .. } => "the registry's own log may say more".into(),
            Self::DockerConfig { .. } => "fix the file or set DEVENV_REGISTRY_USERNAME and DEVENV_REGISTRY_PASSWORD".into(),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `HOST/REPO@sha256:...`: what the workload runs.
    pub reference: String,
    pub digest: String,
    /// Blobs uploaded and their bytes; blobs the registry had already.
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub skipped: usize,
}

/// Credentials for `host` and where they came from (for messages).
fn credentials(
    host: &str,
    vars: &BTreeMap<String, String>,
) -> Result<(RegistryAuth, String), PushError> {
    if let (Some(u), Some(p)) = (
        vars.get("DEVENV_REGISTRY_USERNAME"),
        vars.get("DEVENV_REGISTRY_PASSWORD"),
    ) {
        return Ok((
            RegistryAuth::Basic(u.clone(), p.clone()),
            " (from DEVENV_REGISTRY_USERNAME/PASSWORD)".into(),
        ));
    }
    let path = match (vars.get("DOCKER_CONFIG"), vars.get("HOME")) {
        (Some(dir), _) => Path::new(dir).join("config.json"),
        (None, Some(home)) => Path::new(home).join(".docker/config.json"),
        (None, None) => return Ok((RegistryAuth::Anonymous, String::new())),
    };
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((RegistryAuth::Anonymous, String::new()))
        }
        Err(e) => {
            return Err(PushError::DockerConfig {
                path,
                why: e.to_string(),
            })
        }
    };
    let bad = |why: &str| PushError::DockerConfig {
        path: path.clone(),
        why: why.into(),
    };
    let json: serde_json::Value = serde_json::from_slice(&text).map_err(|_| bad("not JSON"))?;
    let entry = json["auths"].as_object().and_then(|auths| {
        auths.iter().find_map(|(k, v)| {
            let k = k
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            (k.split('/').next() == Some(host)).then_some(v)
        })
    });
    let Some(entry) = entry else {
        return Ok((RegistryAuth::Anonymous, String::new()));
    };
    let from = format!(" (from {})", path.display());
    if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Ok((RegistryAuth::Basic(u.into(), p.into()), from));
    }
    let Some(auth) = entry["auth"].as_str() else {
        return Ok((RegistryAuth::Anonymous, String::new()));
    };
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| {
            bad(&format!(
                "the `auth` of {host} is not base64 of USER:PASSWORD"
            ))
        })?;
    let (u, p) = decoded
        .split_once(':')
        .ok_or_else(|| bad(&format!("the `auth` of {host} is not USER:PASSWORD")))?;
    Ok((RegistryAuth::Basic(u.into(), p.into()), from))
}

fn client(registry: &ImageRegistry) -> Client {
    // oci-client's reqwest is built without a rustls provider of its own: ring, the
    // one kube uses. Installing fails only when one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(ClientConfig {
        protocol: if registry.plain_http() {
            ClientProtocol::HttpsExcept(vec![registry.host.clone()])
        } else {
            ClientProtocol::Https
        },
        use_monolithic_push: true,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..ClientConfig::default()
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

/// Pushes the image in the OCI layout tarball `tarball` to `registry` as
/// `<repository>:<tag>` (`repository` from [`ImageRegistry::repository`]). Progress
/// lines (bytes per blob, skipped blobs) go to `on_line`.
pub async fn push(
    tarball: &Path,
    registry: &ImageRegistry,
    repository: &str,
    tag: &str,
    vars: &BTreeMap<String, String>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<Pushed, PushError> {
    let path = tarball.to_path_buf();
    let (layout, image) = tokio::task::spawn_blocking(move || {
        let layout = Layout::open(&path)?;
        let image = layout.image()?;
        Ok::<_, LayoutError>((layout, image))
    })
    .await
    .map_err(|e| {
        PushError::Layout(LayoutError::Read {
            path: tarball.to_path_buf(),
            source: std::io::Error::other(e),
        })
    })??;
    let host = registry.host.clone();
    let repo = repository
        .strip_prefix(&format!("{host}/"))
        .unwrap_or(repository)
        .to_owned();
    let reference = Reference::with_tag(host.clone(), repo, tag.to_owned());
    let pinned = format!("{repository}@{}", image.digest);
    let scheme = if registry.plain_http() {
        "http"
    } else {
        "https"
    };
    let (auth, from) = credentials(&host, vars)?;
    let client = client(registry);
    let classify = |what: String, source: OciDistributionError| -> PushError {
        match &source {
            OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
                PushError::Unreachable {
                    registry: host.clone(),
                    scheme,
                    source,
                }
            }
            OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::UnauthorizedError { .. } => PushError::Denied {
                registry: host.clone(),
                from: from.clone(),
                source,
            },
            _ => PushError::Push {
                registry: host.clone(),
                what,
                source,
            },
        }
    };
    client
        .auth(&reference, &auth, RegistryOperation::Push)
        .await
        .map_err(|e| classify("the login".into(), e))?;
    if let Ok(d) = client.fetch_manifest_digest(&reference, &auth).await {
        if d == image.digest {
            on_line(&format!(
                "image {pinned} is in the registry already: nothing to push"
            ));
            return Ok(Pushed {
                reference: pinned,
                digest: image.digest,
                uploaded: 0,
                uploaded_bytes: 0,
                skipped: image.layers.len() + 1,
            });
        }
    }
    on_line(&format!(
        "pushing {} layer(s) and the config to {repository}:{tag} ({scheme})",
        image.layers.len()
    ));
    let mut done = Pushed {
        reference: pinned,
        digest: image.digest.clone(),
        uploaded: 0,
        uploaded_bytes: 0,
        skipped: 0,
    };
    let blobs = image
        .layers
        .iter()
        .map(|b| ("layer", b))
        .chain([("config", &image.config)]);
    for (kind, blob) in blobs {
        let exists = client
            .blob_exists(&reference, &blob.digest)
            .await
            .map_err(|e| classify(format!("{kind} {}", short(&blob.digest)), e))?;
        if exists {
            on_line(&format!(
                "{kind} {} ({}) is in the registry already: skipped",
                short(&blob.digest),
                mib(blob.size)
            ));
            done.skipped += 1;
            continue;
        }
        push_blob(&client, &reference, &layout, kind, blob, on_line)
            .await
            .map_err(|e| classify(format!("{kind} {}", short(&blob.digest)), e))?;
        done.uploaded += 1;
        done.uploaded_bytes += blob.size;
    }
    let content_type = http::HeaderValue::from_str(&image.media_type).map_err(|_| {
        PushError::Layout(LayoutError::NotALayout {
            path: tarball.to_path_buf(),
            why: format!("bad manifest media type `{}`", image.media_type),
        })
    })?;
    client
        .push_manifest_raw(&reference, image.manifest.clone(), content_type)
        .await
        .map_err(|e| classify("the manifest".into(), e))?;
    on_line(&format!(
        "pushed {} ({} blob(s), {}; {} skipped)",
        done.reference,
        done.uploaded,
        mib(done.uploaded_bytes),
        done.skipped
    ));
    Ok(done)
}

/// One blob streamed from its place in the tar, with a progress line every few
/// seconds and one at the end.
async fn push_blob(
    client: &Client,
    reference: &Reference,
    layout: &Layout,
    kind: &str,
    blob: &Blob,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<(), OciDistributionError> {
    let (offset, size) = layout
        .blob(&blob.digest)
        .ok_or_else(|| OciDistributionError::GenericError(Some("blob not in the tar".into())))?;
    let mut file = tokio::fs::File::open(layout.path()).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(
        tokio::io::AsyncReadExt::take(file, size),
        CHUNK,
    )
    .map(move |chunk| {
        let chunk = chunk?;
        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(chunk)
    });
    let upload = client.push_blob_stream(reference, stream, &blob.digest, Some(size));
    tokio::pin!(upload);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let name = short(&blob.digest);
    loop {
        tokio::select! {
            r = &mut upload => { r?; break; }
            _ = tick.tick() => on_line(&format!(
                "{kind} {name}: {} of {}",
                mib(sent.load(Ordering::Relaxed)),
                mib(size)
            )),
        }
    }
    on_line(&format!("{kind} {name}: pushed {}", mib(size)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn credentials_from_env_then_docker_config_never_in_messages() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        let (a, from) = credentials("reg:5000", &vars(&[("HOME", &home)])).unwrap();
        assert_eq!(a, RegistryAuth::Anonymous);
        assert_eq!(from, "");
        std::fs::create_dir_all(dir.path().join(".docker")).unwrap();
        // "ann:s3cret"
        std::fs::write(
            dir.path().join(".docker/config.json"),
            r#"{"auths":{"https://reg:5000":{"auth":"YW5uOnMzY3JldA=="},"other:1":{"auth":"!"}}}"#,
        )
        .unwrap();
        let (a, from) = credentials("reg:5000", &vars(&[("HOME", &home)])).unwrap();
        assert_eq!(a, RegistryAuth::Basic("ann".into(), "s3cret".into()));
        assert!(from.contains("config.json") && !from.contains("s3cret"));
        let e = credentials("other:1", &vars(&[("HOME", &home)])).unwrap_err();
        assert!(!e.to_string().contains('!'), "{e}");
        let (a, _) = credentials(
            "reg:5000",
            &vars(&[
                ("HOME", &home),
                ("DEVENV_REGISTRY_USERNAME", "bob"),
                ("DEVENV_REGISTRY_PASSWORD", "pw"),
            ]),
        )
        .unwrap();
        assert_eq!(a, RegistryAuth::Basic("bob".into(), "pw".into()));
    }

    #[tokio::test]
    async fn an_unreachable_registry_says_what_and_how_to_fix() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("img.tar");
        super::super::ocilayout::tests::write_layout(&tar, &[("a", b"a")], false);
        let registry = ImageRegistry {
            host: format!("127.0.0.1:{port}"),
            path: None,
            insecure: false,
        };
        let e = push(
            &tar,
            &registry,
            &registry.repository("shop", "web"),
            "t1",
            &BTreeMap::new(),
            &mut |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, PushError::Unreachable { scheme: "http", .. }),
            "{e:?}"
        );
        assert!(e.to_string().starts_with(&format!(
            "cannot reach the image registry 127.0.0.1:{port} (http)"
        )));
        assert!(e.hint().contains("spec.cluster.image.registry"));
    }
}
