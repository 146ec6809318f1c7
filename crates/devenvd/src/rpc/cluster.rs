//! `ClusterService`: k3d clusters from an environment's `spec.cluster`, the ones
//! devenv created, and whether an environment's cluster answers. The logic is the
//! engine's (`devenv_core::engine::cluster`); this maps requests and replies.

use std::sync::Arc;

use devenv_api::pb::{self, cluster_service_server::ClusterService};
use devenv_core::engine::{ClusterInfo, ClusterReport, Engine};
use tonic::{Request, Response, Status};

use crate::convert;

#[derive(Debug)]
pub struct Clusters {
    pub engine: Arc<Engine>,
}

impl Clusters {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

fn info(c: ClusterInfo) -> pb::ClusterInfo {
    pb::ClusterInfo {
        name: c.name,
        provider: c.provider,
        context: c.context,
        namespace: c.namespace,
        project: c.project.display().to_string(),
        created: c.created.map(convert::timestamp),
        reachable: c.reachable,
        message: c.message,
    }
}

fn report(r: ClusterReport) -> Response<pb::ClusterResponse> {
    Response::new(pb::ClusterResponse {
        cluster: Some(info(r.cluster)),
        output: r.output,
    })
}

#[tonic::async_trait]
impl ClusterService for Clusters {
    async fn create(
        &self,
        req: Request<pb::ClusterRequest>,
    ) -> Result<Response<pb::ClusterResponse>, Status> {
        let req = convert::env_request(&self.engine, req.into_inner().environment)?;
        super::record(&req, &[]);
        let done = self.engine.cluster_create(&req).await;
        done.map(report).map_err(convert::status)
    }

    async fn delete(
        &self,
        req: Request<pb::ClusterRequest>,
    ) -> Result<Response<pb::ClusterResponse>, Status> {
        let req = convert::env_request(&self.engine, req.into_inner().environment)?;
        super::record(&req, &[]);
        let done = self.engine.cluster_delete(&req).await;
        done.map(report).map_err(convert::status)
    }

    async fn list(
        &self,
        _: Request<pb::ClusterListRequest>,
    ) -> Result<Response<pb::ClusterListResponse>, Status> {
        let clusters = self.engine.clusters().await.map_err(convert::status)?;
        Ok(Response::new(pb::ClusterListResponse {
            clusters: clusters.into_iter().map(info).collect(),
        }))
    }

    async fn status(
        &self,
        req: Request<pb::ClusterRequest>,
    ) -> Result<Response<pb::ClusterResponse>, Status> {
        let req = convert::env_request(&self.engine, req.into_inner().environment)?;
        super::record(&req, &[]);
        let cluster = self
            .engine
            .cluster_status(&req)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::ClusterResponse {
            cluster: Some(info(cluster)),
            output: String::new(),
        }))
    }
}
