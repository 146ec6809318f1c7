//! The kubernetes runtime: services that run as workloads in a cluster, through kube-rs.
//!
//! Everything devenv creates carries [`MANAGED_BY`]=devenv plus the environment and
//! service labels, and is written with server-side apply under [`FIELD_MANAGER`], so that
//! `down` can find it by label and a re-apply only touches the fields devenv owns.

pub mod apply;
pub mod build;
pub mod configmap;
pub mod devmode;
pub mod error;
pub mod events;
pub mod exec;
pub mod forward;
pub mod helm;
pub mod ingress;
pub mod k3d;
pub mod manifests;
pub mod ocilayout;
pub mod podexec;
pub mod podlogs;
pub mod push;
pub mod quota;
pub mod render;
pub mod rollout;
pub mod scale;
pub mod teardown;
pub mod tools;
pub mod volcopy;
pub mod volstats;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

pub use error::{KubeError, KubeErrorKind};

use crate::config::{Cluster, ClusterProvider};

/// A client for `config` like `Client::try_from` builds (timeouts, retries, auth,
/// headers; not its tracing spans), except that its connections
/// set TCP_NODELAY: a sync batch or a port-forward packet is a small write on a
/// long-lived stream, and Nagle's algorithm would hold it until the previous one is
/// acknowledged (up to the peer's 40 ms delayed ACK).
pub fn client_for(config: kube::Config) -> Result<Client, kube::Error> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use kube::client::retry::RetryPolicy;
    use kube::client::ConfigExt;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    // The same timeouts as kube's own builder.
    let mut timeouts = hyper_timeout::TimeoutConnector::new(https);
    timeouts.set_connect_timeout(config.connect_timeout);
    timeouts.set_read_timeout(config.read_timeout);
    timeouts.set_write_timeout(config.write_timeout);
    timeouts.set_reset_reader_on_write(config.reset_reader_on_write);
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(timeouts);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| tower::retry::RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(service, config.default_namespace))
}

pub const FIELD_MANAGER: &str = "devenv";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "devenv";
pub const ENV_LABEL: &str = "devenv.dev/environment";
pub const SERVICE_LABEL: &str = "devenv.dev/service";
/// On a namespace devenv created (and so removes on `down`).
pub const CREATED_ANNOTATION: &str = "devenv.dev/created";

/// Labels every object devenv creates for `service` carries.
pub fn labels(env: &str, service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (ENV_LABEL.to_owned(), env.to_owned()),
        (SERVICE_LABEL.to_owned(), service.to_owned()),
    ])
}

/// Label selector for everything of one environment (and one service).
pub fn selector(env: &str, service: Option<&str>) -> String {
    let mut s = format!("{MANAGED_BY}={MANAGED_BY_VALUE},{ENV_LABEL}={env}");
    if let Some(svc) = service {
        s.push_str(&format!(",{SERVICE_LABEL}={svc}"));
    }
    s
}

/// The kubeconfig context devenv uses for a cluster config.
pub fn context_name(cluster: &Cluster) -> Option<String> {
    match cluster.provider {
        ClusterProvider::K3d => Some(format!(
            "k3d-{}",
            cluster.name.as_deref().unwrap_or("devenv")
        )),
        ClusterProvider::Kubeconfig => cluster.context.clone(),
    }
}

/// A connection to one environment's cluster and namespace.
#[derive(Clone)]
pub struct ClusterConn {
    pub client: Client,
    pub namespace: String,
    /// The environment's name (label value).
    pub env: String,
    /// Context used, for messages ("current" when the kubeconfig's default).
    pub context: String,
}

impl std::fmt::Debug for ClusterConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConn")
            .field("namespace", &self.namespace)
            .field("context", &self.context)
            .finish()
    }
}

/// Where the kubeconfig is read from: `KUBECONFIG` of the client that asked (falling
/// back to the daemon's own), else `~/.kube/config`.
pub fn kubeconfig_paths(vars: &BTreeMap<String, String>) -> Vec<PathBuf> {
    let from_env = vars
        .get("KUBECONFIG")
        .cloned()
        .or_else(|| std::env::var("KUBECONFIG").ok())
        .filter(|s| !s.is_empty());
    match from_env {
        Some(list) => std::env::split_paths(&list).collect(),
        None => {
            let home = vars
                .get("HOME")
                .cloned()
                .or_else(|| std::env::var("HOME").ok())
                .unwrap_or_default();
            vec![PathBuf::from(home).join(".kube/config")]
        }
    }
}

impl ClusterConn {
    /// Reads the kubeconfig and builds a client for the configured context. Does not
    /// talk to the server; [`ClusterConn::check`] does.
    pub async fn connect(
        cluster: &Cluster,
        env: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Self, KubeError> {
        let paths = kubeconfig_paths(vars);
        let mut merged: Option<Kubeconfig> = None;
        for p in &paths {
            if !p.exists() {
                continue;
            }
            let kc = Kubeconfig::read_from(p).map_err(|e| {
                KubeError::new(
                    format!("cannot read kubeconfig {}: {}", p.display(), first_line(&e)),
                    "check the file, or point KUBECONFIG at a valid one",
                )
            })?;
            merged = Some(match merged {
                None => kc,
                Some(m) => m.merge(kc).map_err(|e| {
                    KubeError::new(format!("cannot merge kubeconfigs: {e}"), "check KUBECONFIG")
                })?,
            });
        }
        let Some(kc) = merged else {
            let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(match cluster.provider {
                ClusterProvider::K3d => KubeError::new(
                    format!("no kubeconfig found (looked at {})", shown.join(", ")),
                    "create the cluster first: `devenv cluster create`",
                ),
                ClusterProvider::Kubeconfig => KubeError::new(
                    format!("no kubeconfig found (looked at {})", shown.join(", ")),
                    "set KUBECONFIG or create ~/.kube/config",
                ),
            });
        };
        let context = context_name(cluster);
        if let Some(ctx) = &context {
            if !kc.contexts.iter().any(|c| &c.name == ctx) {
                let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
                let hint = match cluster.provider {
                    ClusterProvider::K3d => "create it with `devenv cluster create`".to_owned(),
                    ClusterProvider::Kubeconfig => format!(
                        "set spec.cluster.context to one of: {}",
                        if known.is_empty() {
                            "(none)".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                };
                return Err(KubeError::new(
                    format!("kubeconfig has no context `{ctx}`"),
                    hint,
                ));
            }
        } else if kc.current_context.as_deref().unwrap_or("").is_empty() {
            return Err(KubeError::new(
                "kubeconfig has no current context",
                "set spec.cluster.context, or run `kubectl config use-context NAME`",
            ));
        }
        let shown_ctx = context
            .clone()
            .or_else(|| kc.current_context.clone())
            .unwrap_or_default();
        let opts = KubeConfigOptions {
            context: context.clone(),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| {
                KubeError::new(
                    format!(
                        "kubeconfig context `{shown_ctx}` is unusable: {}",
                        first_line(&e)
                    ),
                    "check its cluster, user and credentials",
                )
            })?;
        let client = client_for(config).map_err(|e| error::explain(&e, &shown_ctx))?;
        Ok(Self {
            client,
            namespace: cluster.namespace.clone(),
            env: env.to_owned(),
            context: shown_ctx,
        })
    }

    /// Asks the API server for its version: the cheapest proof that it is reachable
    /// and accepts our credentials.
    pub async fn check(&self) -> Result<String, KubeError> {
        let v = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| error::explain(&e, &self.context))?;
        Ok(v.git_version)
    }

    /// Creates the namespace if absent (recording that devenv created it).
    pub async fn ensure_namespace(&self) -> Result<(), KubeError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_opt(&self.namespace).await {
            Ok(Some(ns)) => {
                if ns.metadata.deletion_timestamp.is_some() {
                    return Err(KubeError::new(
                        format!("namespace `{}` is being deleted", self.namespace),
                        "wait for it to go, then run `devenv up` again",
                    ));
                }
                Ok(())
            }
            Ok(None) => {
                let mut labels = BTreeMap::new();
                labels.insert(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned());
                labels.insert(ENV_LABEL.to_owned(), self.env.clone());
                let ns = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": self.namespace,
                        "labels": labels,
                        "annotations": { CREATED_ANNOTATION: "true" },
                    }
                });
                api.patch(
                    &self.namespace,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&ns),
                )
                .await
                .map_err(|e| {
                    error::explain_in(&e, &self.context, &format!("namespace {}", self.namespace))
                })?;
                Ok(())
            }
            // A developer's Role is namespaced and cannot read namespaces (cluster
            // scope): the admin who bound it made the namespace. Were it missing, the
            // first object devenv writes there says so.
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
            Err(e) => Err(error::explain_in(
                &e,
                &self.context,
                &format!("namespace {}", self.namespace),
            )),
        }
    }
}

/// The first line of an error's message (kube's messages nest causes).
pub(crate) fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}
