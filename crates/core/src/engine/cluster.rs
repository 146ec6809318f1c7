//! Clusters as a user manages them (`devenv cluster create|delete|ls|status`): k3d
//! clusters made from an environment's `spec.cluster`, the record of the ones devenv
//! created (kept in state so `cluster ls` can reach them with no client), and whether
//! a cluster's API server answers, with a diagnosis when it does not.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{Engine, EngineError, ProjectRef};
use crate::config::{Cluster, ClusterProvider, Environment, K3d};
use crate::kube::{self, k3d, ClusterConn, KubeError};
use crate::state::{ClusterRecord, StateError};

/// Bound on one reachability check: a black-holed address must not hang `status`.
const CHECK_DEADLINE: Duration = Duration::from_secs(10);

/// Client variables kept with a recorded cluster, to reach it again for `cluster ls`
/// (which has no client): where its kubeconfig is, and how k3d and Docker are found.
const KEPT_VARS: [&str; 6] = [
    "KUBECONFIG",
    "HOME",
    "PATH",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
];

/// Why a cluster operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("this environment has no spec.cluster (hint: add one, e.g. `cluster: {{ provider: k3d, name: dev }}`, or `provider: kubeconfig` to use a cluster from your kubeconfig)")]
    NoCluster,
    #[error("devenv can only {verb} k3d clusters; this environment uses `provider: kubeconfig` (hint: manage that cluster with its own tools, or set spec.cluster.provider: k3d)")]
    NotK3d { verb: &'static str },
    /// `spec.cluster` holds what k3d would refuse or misread (a name, a port rule).
    #[error("{0}")]
    Invalid(String),
    /// k3d (or Docker under it) failed; one line with its hint.
    #[error(transparent)]
    Tool(#[from] KubeError),
    #[error("recording the cluster: {0}")]
    Record(#[source] StateError),
}

/// A cluster as `cluster` commands show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    pub name: String,
    /// `k3d` or `kubeconfig`.
    pub provider: String,
    pub context: String,
    pub namespace: String,
    /// The project whose environment made it (or names it).
    pub project: PathBuf,
    /// When devenv created it; `None` for a cluster devenv did not create.
    pub created: Option<SystemTime>,
    /// Whether the API server answered, and then its version or else why not.
    pub reachable: bool,
    pub message: String,
}

/// What `cluster create|delete` did: the cluster, and what k3d printed.
#[derive(Debug, Clone)]
pub struct ClusterReport {
    pub cluster: ClusterInfo,
    pub output: String,
}

impl Engine {
    /// `cluster create`: the environment's k3d cluster, recorded when devenv made it.
    pub async fn cluster_create(&self, req: &ProjectRef) -> Result<ClusterReport, EngineError> {
        let (env, cluster) = self.cluster_of(req)?;
        k3d_only(&cluster, "create")?;
        k3d::check(&cluster).map_err(ClusterError::Invalid)?;
        let name = k3d::name(&cluster).to_owned();
        let _one_at_a_time = self.cluster_ops.lock().await;
        tracing::info!(cluster = %name, "creating k3d cluster");
        let created = k3d::create(&cluster, &req.vars, &mut |line| {
            tracing::debug!(cluster = %name, "k3d: {line}");
        })
        .await
        .map_err(ClusterError::Tool)?;
        let output = match created {
            k3d::Created::New(output) => {
                let vars = req
                    .vars
                    .iter()
                    .filter(|(k, _)| KEPT_VARS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.state
                    .put_cluster(&ClusterRecord {
                        name: name.clone(),
                        provider: "k3d".into(),
                        context: kube::context_name(&cluster).unwrap_or_default(),
                        namespace: cluster.namespace.clone(),
                        project_dir: env.project_dir.clone(),
                        created: SystemTime::now(),
                        vars,
                    })
                    .and_then(|()| self.state.flush())
                    .map_err(ClusterError::Record)?;
                tracing::info!(cluster = %name, "k3d cluster created");
                output
            }
            k3d::Created::Existed => {
                format!("k3d cluster `{name}` already exists; nothing to do\n")
            }
        };
        let mut info = with_record(info(&env, &cluster), self.recorded("k3d", &name).as_ref());
        check(&mut info, &cluster, &env.name, &req.vars).await;
        Ok(ClusterReport {
            cluster: info,
            output,
        })
    }

    /// `cluster delete`: deletes the environment's k3d cluster and forgets its record.
    pub async fn cluster_delete(&self, req: &ProjectRef) -> Result<ClusterReport, EngineError> {
        let (env, cluster) = self.cluster_of(req)?;
        k3d_only(&cluster, "delete")?;
        k3d::check(&cluster).map_err(ClusterError::Invalid)?;
        let name = k3d::name(&cluster).to_owned();
        let _one_at_a_time = self.cluster_ops.lock().await;
        tracing::info!(cluster = %name, "deleting k3d cluster");
        let output = k3d::delete(&name, &req.vars, &mut |line| {
            tracing::debug!(cluster = %name, "k3d: {line}");
        })
        .await
        .map_err(ClusterError::Tool)?;
        let rec = self.recorded("k3d", &name);
        self.state
            .remove_cluster("k3d", &name)
            .and_then(|_| self.state.flush())
            .map_err(ClusterError::Record)?;
        let mut info = with_record(info(&env, &cluster), rec.as_ref());
        info.message = "deleted".into();
        Ok(ClusterReport {
            cluster: info,
            output,
        })
    }

    /// `cluster ls`: every cluster devenv created, each checked with the variables
    /// of the client that created it.
    pub async fn clusters(&self) -> Result<Vec<ClusterInfo>, EngineError> {
        let records = self.state.clusters()?;
        Ok(futures::future::join_all(records.iter().map(live)).await)
    }

    /// `cluster status`: the environment's cluster and whether it answers.
    pub async fn cluster_status(&self, req: &ProjectRef) -> Result<ClusterInfo, EngineError> {
        let (env, cluster) = self.cluster_of(req)?;
        let rec = match cluster.provider {
            ClusterProvider::K3d => self.recorded("k3d", k3d::name(&cluster)),
            ClusterProvider::Kubeconfig => None,
        };
        let mut info = with_record(info(&env, &cluster), rec.as_ref());
        check(&mut info, &cluster, &env.name, &req.vars).await;
        Ok(info)
    }

    /// The environment a request names, and its `spec.cluster`.
    fn cluster_of(&self, req: &ProjectRef) -> Result<(Environment, Cluster), EngineError> {
        let env = self.load(req)?.environment;
        let cluster = env.cluster.clone().ok_or(ClusterError::NoCluster)?;
        Ok((env, cluster))
    }

    fn recorded(&self, provider: &str, name: &str) -> Option<ClusterRecord> {
        self.state
            .clusters()
            .ok()?
            .into_iter()
            .find(|r| r.provider == provider && r.name == name)
    }
}

fn k3d_only(cluster: &Cluster, verb: &'static str) -> Result<(), ClusterError> {
    match cluster.provider {
        ClusterProvider::K3d => Ok(()),
        ClusterProvider::Kubeconfig => Err(ClusterError::NotK3d { verb }),
    }
}

/// An environment's cluster, without the live part.
fn info(env: &Environment, cluster: &Cluster) -> ClusterInfo {
    let (name, provider) = match cluster.provider {
        ClusterProvider::K3d => (k3d::name(cluster).to_owned(), "k3d"),
        ClusterProvider::Kubeconfig => (
            cluster
                .name
                .clone()
                .or_else(|| cluster.context.clone())
                .unwrap_or_default(),
            "kubeconfig",
        ),
    };
    ClusterInfo {
        name,
        provider: provider.into(),
        context: kube::context_name(cluster).unwrap_or_default(),
        namespace: cluster.namespace.clone(),
        project: env.project_dir.clone(),
        ..Default::default()
    }
}

fn with_record(mut info: ClusterInfo, rec: Option<&ClusterRecord>) -> ClusterInfo {
    if let Some(rec) = rec {
        info.project = rec.project_dir.clone();
        info.created = Some(rec.created);
    }
    info
}

/// Whether the cluster's API server answers: fills `reachable`, `message` (server
/// version, or the one-line reason with its hint) and the context actually used.
async fn check(
    info: &mut ClusterInfo,
    cluster: &Cluster,
    env_name: &str,
    vars: &BTreeMap<String, String>,
) {
    let shown = if info.context.is_empty() {
        "(current)".to_owned()
    } else {
        info.context.clone()
    };
    let attempt = async {
        let kube = ClusterConn::connect(cluster, env_name, vars).await?;
        let version = kube.check().await?;
        Ok::<_, KubeError>((kube.context, version))
    };
    match tokio::time::timeout(CHECK_DEADLINE, attempt).await {
        Ok(Ok((context, version))) => {
            info.reachable = true;
            info.context = context;
            info.message = format!("API server {version}");
        }
        Ok(Err(e)) => {
            info.reachable = false;
            info.message = e.to_string();
        }
        Err(_) => {
            info.reachable = false;
            info.message = KubeError::new(
                format!(
                    "cannot reach the API server of context `{shown}`: no answer within {}s",
                    CHECK_DEADLINE.as_secs()
                ),
                "is the cluster running? check the server address in the kubeconfig",
            )
            .to_string();
        }
    }
}

/// A recorded cluster with its live state, checked with the variables of the client
/// that created it. When the API server does not answer, k3d says whether the
/// cluster still exists.
async fn live(rec: &ClusterRecord) -> ClusterInfo {
    let cluster = Cluster {
        provider: ClusterProvider::K3d,
        name: Some(rec.name.clone()),
        context: None,
        namespace: rec.namespace.clone(),
        k3d: K3d::default(),
        shared: false,
        policy: Default::default(),
        snapshot_image: None,
        registry: None,
    };
    let mut info = ClusterInfo {
        name: rec.name.clone(),
        provider: rec.provider.clone(),
        context: rec.context.clone(),
        namespace: rec.namespace.clone(),
        project: rec.project_dir.clone(),
        created: Some(rec.created),
        ..Default::default()
    };
    check(&mut info, &cluster, "", &rec.vars).await;
    if !info.reachable {
        if let Ok(listed) = k3d::list(&rec.vars).await {
            info.message = diagnose(&rec.name, listed.iter().find(|c| c.name == rec.name))
                .unwrap_or(info.message);
        }
    }
    info
}

/// Why a recorded k3d cluster does not answer, from k3d's list: gone, or stopped.
/// `None` when k3d has it running (the reachability message says the rest).
fn diagnose(name: &str, listed: Option<&k3d::Listed>) -> Option<String> {
    match listed {
        None => Some(format!(
            "k3d has no cluster `{name}`: deleted outside devenv? (hint: `devenv cluster create` makes it again)"
        )),
        Some(c) if !c.running() => Some(format!(
            "k3d cluster `{name}` is stopped (hint: `k3d cluster start {name}`)"
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_cluster_is_named_by_name_or_context_and_never_managed() {
        let env = Environment {
            name: "shop".into(),
            version: None,
            project_dir: "/p".into(),
            services: vec![],
            cluster: None,
            volumes: vec![],
            secrets: vec![],
            hooks: Default::default(),
            workspaces: Vec::new(),
        };
        let cluster = Cluster {
            provider: ClusterProvider::Kubeconfig,
            name: None,
            context: Some("kind-dev".into()),
            namespace: "devenv-shop".into(),
            k3d: K3d::default(),
            shared: false,
            policy: Default::default(),
            snapshot_image: None,
            registry: None,
        };
        let i = info(&env, &cluster);
        assert_eq!(
            (i.name.as_str(), i.provider.as_str(), i.context.as_str()),
            ("kind-dev", "kubeconfig", "kind-dev")
        );
        assert!(matches!(
            k3d_only(&cluster, "delete"),
            Err(ClusterError::NotK3d { verb: "delete" })
        ));
    }

    #[test]
    fn a_silent_k3d_cluster_is_diagnosed_from_k3ds_list() {
        assert!(diagnose("dev", None)
            .unwrap()
            .starts_with("k3d has no cluster `dev`"));
    }
}
