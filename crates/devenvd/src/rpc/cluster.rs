//! `ClusterService`: k3d clusters from an environment's `spec.cluster`, the ones
//! devenv created, and whether an environment's cluster answers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use devenv_api::pb::{self, cluster_service_server::ClusterService};
use devenv_core::config::{Cluster, ClusterProvider, Environment, K3d};
use devenv_core::engine::{Engine, EnvRequest};
use devenv_core::kube::{self, k3d, KubeEnv, KubeError};
use devenv_core::state::ClusterRecord;
use tonic::{Request, Response, Status};

use crate::convert;

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

#[derive(Debug)]
pub struct Clusters {
    pub engine: Arc<Engine>,
    /// One create/delete at a time: two k3d runs on one cluster name race.
    pub ops: tokio::sync::Mutex<()>,
}

impl Clusters {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            ops: tokio::sync::Mutex::new(()),
        }
    }

    /// The environment a request names, and its `spec.cluster`.
    fn cluster_of(
        &self,
        r: Option<pb::EnvironmentRef>,
    ) -> Result<(EnvRequest, Environment, Cluster), Status> {
        let req = convert::env_request(r)?;
        let loaded = self
            .engine
            .load(&req)
            .map_err(|e| convert::status(e.into()))?;
        let env = loaded.environment;
        let cluster = env.cluster.clone().ok_or_else(|| {
            Status::failed_precondition(
                "this environment has no spec.cluster (hint: add one, e.g. \
                 `cluster: { provider: k3d, name: dev }`, or `provider: kubeconfig` \
                 to use a cluster from your kubeconfig)",
            )
        })?;
        Ok((req, env, cluster))
    }

    fn k3d_only(cluster: &Cluster, verb: &str) -> Result<(), Status> {
        if cluster.provider == ClusterProvider::K3d {
            return Ok(());
        }
        Err(Status::failed_precondition(format!(
            "devenv can only {verb} k3d clusters; this environment uses `provider: kubeconfig` \
             (hint: manage that cluster with its own tools, or set spec.cluster.provider: k3d)"
        )))
    }

    fn recorded(&self, provider: &str, name: &str) -> Option<ClusterRecord> {
        self.engine
            .state()
            .clusters()
            .ok()?
            .into_iter()
            .find(|r| r.provider == provider && r.name == name)
    }
}

/// `ClusterInfo` of an environment's cluster, without the live part.
fn info(env: &Environment, cluster: &Cluster) -> pb::ClusterInfo {
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
    pb::ClusterInfo {
        name,
        provider: provider.into(),
        context: kube::context_name(cluster).unwrap_or_default(),
        namespace: cluster.namespace.clone(),
        project: env.project_dir.display().to_string(),
        ..Default::default()
    }
}

fn with_record(mut info: pb::ClusterInfo, rec: Option<&ClusterRecord>) -> pb::ClusterInfo {
    if let Some(rec) = rec {
        info.project = rec.project_dir.display().to_string();
        info.created = Some(convert::timestamp(rec.created));
    }
    info
}

/// Whether the cluster's API server answers: fills `reachable`, `message` (server
/// version, or the one-line reason with its hint) and the context actually used.
async fn check(
    info: &mut pb::ClusterInfo,
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
        let kube = KubeEnv::connect(cluster, env_name, vars).await?;
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

fn state_error(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("recording the cluster: {e}"))
}

#[tonic::async_trait]
impl ClusterService for Clusters {
    async fn create(
        &self,
        req: Request<pb::ClusterRequest>,
    ) -> Result<Response<pb::ClusterResponse>, Status> {
        let (req, env, cluster) = self.cluster_of(req.into_inner().environment)?;
        Self::k3d_only(&cluster, "create")?;
        k3d::check(&cluster).map_err(Status::invalid_argument)?;
        let name = k3d::name(&cluster).to_owned();
        let _one_at_a_time = self.ops.lock().await;
        tracing::info!(cluster = %name, "creating k3d cluster");
        let created = k3d::create(&cluster, &req.vars, &mut |line| {
            tracing::debug!(cluster = %name, "k3d: {line}");
        })
        .await
        .map_err(|e| convert::kube_status(&e))?;
        let output = match created {
            k3d::Created::New(output) => {
                let vars = req
                    .vars
                    .iter()
                    .filter(|(k, _)| KEPT_VARS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let state = self.engine.state();
                state
                    .put_cluster(&ClusterRecord {
                        name: name.clone(),
                        provider: "k3d".into(),
                        context: kube::context_name(&cluster).unwrap_or_default(),
                        namespace: cluster.namespace.clone(),
                        project_dir: env.project_dir.clone(),
                        created: SystemTime::now(),
                        vars,
                    })
                    .and_then(|()| state.flush())
                    .map_err(state_error)?;
                tracing::info!(cluster = %name, "k3d cluster created");
                output
            }
            k3d::Created::Existed => {
                format!("k3d cluster `{name}` already exists; nothing to do\n")
            }
        };
        let mut info = with_record(info(&env, &cluster), self.recorded("k3d", &name).as_ref());
        check(&mut info, &cluster, &env.name, &req.vars).await;
        Ok(Response::new(pb::ClusterResponse {
            cluster: Some(info),
            output,
        }))
    }

    async fn delete(
        &self,
        req: Request<pb::ClusterRequest>,
    ) -> Result<Response<pb::ClusterResponse>, Status> {
        let (req, env, cluster) = self.cluster_of(req.into_inner().environment)?;
        Self::k3d_only(&cluster, "delete")?;
        k3d::check(&cluster).map_err(Status::invalid_argument)?;
        let name = k3d::name(&cluster).to_owned();
        let _one_at_a_time = self.ops.lock().await;
        tracing::info!(cluster = %name, "deleting k3d cluster");
        let output = k3d::delete(&name, &req.vars, &mut |line| {
            tracing::debug!(cluster = %name, "k3d: {line}");
        })
        .await
        .map_err(|e| convert::kube_status(&e))?;
        let rec = self.recorded("k3d", &name);
        let state = self.engine.state();
        state
            .remove_cluster("k3d", &name)
            .and_then(|_| state.flush())
            .map_err(state_error)?;
        let mut info = with_record(info(&env, &cluster), rec.as_ref());
        info.message = "deleted".into();
        Ok(Response::new(pb::ClusterResponse {
            cluster: Some(info),
            output,
        }))
    }

    async fn list(
        &self,
        _: Request<pb::ClusterListRequest>,
    ) -> Result<Response<pb::ClusterListResponse>, Status> {
        let records = self
            .engine
            .state()
            .clusters()
            .map_err(|e| Status::internal(e.to_string()))?;
        let clusters = futures::future::join_all(records.iter().map(live)).await;
        Ok(Response::new(pb::ClusterListResponse { clusters }))
    }

    async fn status(
        &self,
        req: Request<pb::ClusterRequest>,
    ) -> Result<Response<pb::ClusterResponse>, Status> {
        let (req, env, cluster) = self.cluster_of(req.into_inner().environment)?;
        let rec = match cluster.provider {
            ClusterProvider::K3d => self.recorded("k3d", k3d::name(&cluster)),
            ClusterProvider::Kubeconfig => None,
        };
        let mut info = with_record(info(&env, &cluster), rec.as_ref());
        check(&mut info, &cluster, &env.name, &req.vars).await;
        Ok(Response::new(pb::ClusterResponse {
            cluster: Some(info),
            output: String::new(),
        }))
    }
}

/// A recorded cluster with its live state, checked with the variables of the client
/// that created it. When the API server does not answer, k3d says whether the
/// cluster still exists.
async fn live(rec: &ClusterRecord) -> pb::ClusterInfo {
    let cluster = Cluster {
        provider: ClusterProvider::K3d,
        name: Some(rec.name.clone()),
        context: None,
        namespace: rec.namespace.clone(),
        k3d: K3d::default(),
    };
    let mut info = pb::ClusterInfo {
        name: rec.name.clone(),
        provider: rec.provider.clone(),
        context: rec.context.clone(),
        namespace: rec.namespace.clone(),
        project: rec.project_dir.display().to_string(),
        created: Some(convert::timestamp(rec.created)),
        ..Default::default()
    };
    check(&mut info, &cluster, "", &rec.vars).await;
    if !info.reachable {
        if let Ok(listed) = k3d::list(&rec.vars).await {
            match listed.iter().find(|c| c.name == rec.name) {
                None => {
                    info.message = format!(
                        "k3d has no cluster `{}`: deleted outside devenv? (hint: `devenv cluster create` makes it again)",
                        rec.name
                    )
                }
                Some(c) if !c.running() => {
                    info.message = format!(
                        "k3d cluster `{0}` is stopped (hint: `k3d cluster start {0}`)",
                        rec.name
                    )
                }
                Some(_) => {}
            }
        }
    }
    info
}
