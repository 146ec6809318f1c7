//! Deploy strategies of a kubernetes service, in one place: an `image` (rendered
//! into a Deployment, built first when it has a `build`), `manifests`, a helm
//! `chart`, or an existing `workload`. Each returns the workloads that gate
//! readiness.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::KubeRun;
use crate::engine::error::DeployError;
use crate::kube::apply;
use crate::kube::rollout::Workload;
use crate::kube::{configmap, helm, manifests, render};
use crate::logs::Stream;

impl KubeRun {
    /// Applies the service's objects, then its Ingress; returns the workloads that
    /// gate readiness.
    pub(in crate::engine) async fn deploy(&self) -> Result<Vec<Workload>, DeployError> {
        let workloads = self.deploy_objects().await?;
        if let (Some(obj), Some(route)) = (
            crate::kube::ingress::object(&self.env.name, &self.svc),
            self.svc.ingress.as_ref(),
        ) {
            self.kinds.apply(&self.kenv, &obj, false).await?;
            self.system(&format!(
                "Ingress {}: {} -> Service {} port {}",
                self.svc.name,
                route.url(),
                route.backend,
                route.port
            ));
        }
        Ok(workloads)
    }

    /// The service's own objects, by its deploy strategy.
    async fn deploy_objects(&self) -> Result<Vec<Workload>, DeployError> {
        let started = Instant::now();
        let svc = &self.svc;
        let objects: Vec<Value> = if let Some(dir) = &svc.manifests {
            // Reading and parsing up to 32 MiB of YAML stays off the async workers.
            let (dir, base) = (dir.clone(), self.env.project_dir.clone());
            let docs = tokio::task::spawn_blocking(move || manifests::load(&dir, &base))
                .await
                .map_err(DeployError::ManifestsTask)?
                .map_err(DeployError::Manifests)?;
            let mut objs = Vec::with_capacity(docs.len());
            for d in &docs {
                let mut o = d.object.clone();
                manifests::label(&mut o, &self.env.name, &svc.name);
                objs.push(o);
            }
            // Validate every document first: nothing is applied when one is invalid.
            let checks = futures::future::join_all(
                objs.iter().map(|o| self.kinds.apply(&self.kenv, o, true)),
            )
            .await;
            let errors: Vec<String> = checks
                .into_iter()
                .zip(&docs)
                .filter_map(|(r, d)| {
                    r.err()
                        .map(|e| format!("{}: {e}", d.location(&self.env.project_dir)))
                })
                .collect();
            if !errors.is_empty() {
                return Err(DeployError::InvalidManifests(errors));
            }
            objs
        } else if let Some(chart) = &svc.chart {
            self.restore_pending(&[]).await?;
            return self.helm_install(chart).await;
        } else if let Some(w) = &svc.workload {
            return self.existing_workload(w).await;
        } else {
            self.host_volumes_allowed().await?;
            let configs = self.config_files().await?;
            let image = self.image().await?;
            render::objects(&self.env, svc, &image, &configs)
        };
        self.restore_pending(&objects).await?;
        apply::apply_all(&self.kinds, &self.kenv, &objects).await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.system(&format!(
            "applied {} object(s) to namespace {} in {ms:.0} ms",
            objects.len(),
            self.kenv.namespace
        ));
        self.workloads_of(&objects).await
    }

    /// The files of the configmap volumes the service mounts, read off the async
    /// workers (bounded by a ConfigMap's size).
    async fn config_files(
        &self,
    ) -> Result<std::collections::BTreeMap<String, configmap::ConfigFiles>, DeployError> {
        let sources = render::configmap_sources(&self.env, &self.svc);
        if sources.is_empty() {
            return Ok(Default::default());
        }
        tokio::task::spawn_blocking(move || {
            sources
                .into_iter()
                .map(|(volume, source)| match configmap::read(&source) {
                    Ok(files) => Ok((volume, files)),
                    Err(source) => Err(DeployError::ConfigFiles { volume, source }),
                })
                .collect()
        })
        .await
        .map_err(DeployError::ConfigFilesTask)?
    }

    /// A `host` volume is a path on one node: refused on a cluster of several nodes
    /// unless the volume says `force: true`.
    async fn host_volumes_allowed(&self) -> Result<(), DeployError> {
        let unforced = self.svc.volumes.iter().find_map(|m| {
            self.env.volumes.iter().find(|v| {
                v.name == m.name
                    && matches!(v.kind, crate::config::VolumeKind::Host { force: false, .. })
            })
        });
        let Some(vol) = unforced else {
            return Ok(());
        };
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> =
            kube::Api::all(self.kenv.client.clone());
        let list = nodes
            .list_metadata(&kube::api::ListParams::default())
            .await
            .map_err(|e| crate::kube::error::explain(&e, &self.kenv.context))?;
        match list.items.len() {
            0 | 1 => Ok(()),
            n => Err(DeployError::HostVolumeOnManyNodes {
                volume: vol.name.clone(),
                nodes: n,
            }),
        }
    }

    pub(in crate::engine) async fn image(&self) -> Result<String, DeployError> {
        if let Some(b) = &self.svc.build {
            let name: Arc<str> = Arc::from(self.svc.name.as_str());
            let hub = self.shared.logs.clone();
            let cluster = self.env.cluster.clone();
            return crate::kube::build::build_image(
                &self.env.name,
                &self.svc.name,
                b,
                cluster.as_ref(),
                &self.vars,
                &self.shared.scratch,
                &mut move |line: &str| hub.push(&name, Stream::System, line),
            )
            .await
            .map_err(DeployError::from);
        }
        render::image_of(&self.svc).ok_or(DeployError::NoImage)
    }

    /// Restores what an earlier dev mode of this service left, before `objects` are
    /// applied over it (see [`DevTarget::restore_pending`]).
    async fn restore_pending(&self, objects: &[Value]) -> Result<(), DeployError> {
        let workloads = self.workloads_of(objects).await.unwrap_or_default();
        self.dev_target().restore_pending(&workloads).await
    }

    pub(in crate::engine) async fn workloads_of(
        &self,
        objects: &[Value],
    ) -> Result<Vec<Workload>, DeployError> {
        let mut out = Vec::new();
        for o in objects.iter().filter(|o| manifests::is_workload(o)) {
            let (ar, _) = self
                .kinds
                .resolve(
                    &self.kenv,
                    o["apiVersion"].as_str().unwrap_or_default(),
                    o["kind"].as_str().unwrap_or_default(),
                )
                .await?;
            if let Some(w) = Workload::from_object(o, ar, &self.kenv.namespace) {
                out.push(w);
            }
        }
        Ok(out)
    }

    pub(in crate::engine) async fn helm_install(
        &self,
        chart: &str,
    ) -> Result<Vec<Workload>, DeployError> {
        let bin = helm::binary(&self.vars)?;
        let started = Instant::now();
        // Over helm's stdin, never a file: they may hold secrets (`kube::helm`).
        let values = self
            .svc
            .values
            .as_ref()
            .map(|v| serde_json::to_vec(v).unwrap_or_default());
        let release = helm::release(&self.svc.name);
        let ctx =
            crate::kube::context_name(self.env.cluster.as_ref().ok_or(DeployError::NoCluster)?);
        let args = helm::install_args(
            &release,
            chart,
            &self.kenv.namespace,
            ctx.as_deref(),
            values.is_some(),
        );
        helm::run(
            &bin,
            &args,
            values.as_deref(),
            &self.vars,
            &self.env.project_dir,
        )
        .await?;
        let get = helm::manifest_args(&release, &self.kenv.namespace, ctx.as_deref());
        let manifest = helm::run(&bin, &get, None, &self.vars, &self.env.project_dir).await?;
        let objects: Vec<Value> = serde_yaml::Deserializer::from_str(&manifest)
            .filter_map(|d| serde::Deserialize::deserialize(d).ok())
            .filter(|v: &Value| !v.is_null())
            .collect();
        self.system(&format!(
            "helm release {} installed ({} objects) in {:.0} ms",
            self.svc.name,
            objects.len(),
            started.elapsed().as_secs_f64() * 1000.0
        ));
        self.workloads_of(&objects).await
    }

    /// A `workload:` service: the existing workload, never created or changed here.
    pub(in crate::engine) async fn existing_workload(
        &self,
        r: &crate::config::WorkloadRef,
    ) -> Result<Vec<Workload>, DeployError> {
        let (ar, _) = self.kinds.resolve(&self.kenv, "apps/v1", &r.kind).await?;
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(self.kenv.client.clone(), &self.kenv.namespace, &ar);
        let found = api
            .get_opt(&r.name)
            .await
            .map_err(|e| crate::kube::error::explain(&e, &self.kenv.context))?;
        let Some(found) = found else {
            return Err(DeployError::WorkloadMissing {
                what: r.to_string(),
                namespace: self.kenv.namespace.clone(),
            });
        };
        let value =
            serde_json::to_value(&found).map_err(|source| DeployError::WorkloadUnreadable {
                what: r.to_string(),
                source,
            })?;
        self.restore_pending(std::slice::from_ref(&value)).await?;
        Workload::from_object(&value, ar, &self.kenv.namespace)
            .map(|w| vec![w])
            .ok_or_else(|| DeployError::NoSelector(r.to_string()))
    }
}
