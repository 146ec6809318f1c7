//! `devenv down` for the cluster side: delete everything labelled as this
//! environment's, wait until it is gone, keep volumes unless asked, and remove the
//! namespace when devenv created it.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::discovery::Scope;
use kube::runtime::wait::{await_condition, conditions};

use super::apply::Kinds;
use super::helm;
use super::{error, selector, ClusterConn, KubeError, KubeErrorKind, CREATED_ANNOTATION};
use crate::config::{Environment, RuntimeKind, Service};

/// How long `down` waits for deleted objects to disappear.
const GONE_DEADLINE: Duration = Duration::from_secs(90);

/// Kinds devenv may create in a namespace besides those named by manifests.
const SWEPT: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("v1", "Pod"),
    ("networking.k8s.io/v1", "Ingress"),
];

#[derive(Debug, Default, Clone)]
pub struct Report {
    /// `Kind/name` of what was deleted.
    pub deleted: Vec<String>,
    /// Persistent volume claims kept (no `--volumes`).
    pub kept_volumes: Vec<String>,
    pub namespace_removed: bool,
}

/// Why the cluster half of `down` stopped.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    /// Removing a helm release failed (or helm is missing while one is installed).
    #[error("{0}")]
    Helm(#[source] KubeError),
    #[error("{0}; run `devenv down` again to finish removing the cluster's objects")]
    Objects(#[source] KubeError),
}

/// The cluster half of `devenv down`: the environment's helm releases first (their
/// objects don't carry devenv's labels), then everything labelled as its own.
pub async fn down(
    kenv: &ClusterConn,
    env: &Environment,
    kinds: &Kinds,
    vars: &BTreeMap<String, String>,
    volumes: bool,
) -> Result<Report, TeardownError> {
    let kube_services: Vec<&Service> = env
        .services
        .iter()
        .filter(|s| s.runtime == RuntimeKind::Kubernetes)
        .collect();
    let mut helm_deleted = Vec::new();
    // Helm releases first (their objects don't carry devenv's labels).
    for svc in kube_services.iter().filter(|s| s.chart.is_some()) {
        let bin = match helm::binary(vars) {
            Ok(b) => b,
            // Without helm, down can still finish when there is no release to remove.
            Err(e) => match helm::has_release(kenv, &helm::release(&svc.name)).await {
                Ok(false) => continue,
                Ok(true) => return Err(TeardownError::Helm(e)),
                Err(k) => return Err(TeardownError::Helm(k)),
            },
        };
        let context = env.cluster.as_ref().and_then(super::context_name);
        let args = helm::uninstall_args(
            &helm::release(&svc.name),
            &kenv.namespace,
            context.as_deref(),
        );
        helm::run(&bin, &args, None, vars, &env.project_dir)
            .await
            .map_err(TeardownError::Helm)?;
        helm_deleted.push(format!("helm release {}", svc.name));
    }
    // Kinds named by manifests, so custom resources are found too.
    let mut extra = Vec::new();
    for svc in &kube_services {
        if let Some(dir) = &svc.manifests {
            if let Ok(docs) = super::manifests::load(dir, &env.project_dir) {
                for d in docs {
                    if let Some(t) = super::apply::type_of(&d.object) {
                        if !extra.contains(&t) {
                            extra.push(t);
                        }
                    }
                }
            }
        }
    }
    let mut r = teardown(kenv, kinds, &extra, volumes)
        .await
        .map_err(TeardownError::Objects)?;
    helm_deleted.extend(r.deleted);
    r.deleted = helm_deleted;
    Ok(r)
}

/// Deletes the environment's objects; `extra` are kinds its manifests used.
pub async fn teardown(
    kenv: &ClusterConn,
    kinds: &Kinds,
    extra: &[(String, String)],
    volumes: bool,
) -> Result<Report, KubeError> {
    let sel = selector(&kenv.env, None);
    let mut todo: Vec<(String, String)> = SWEPT
        .iter()
        .map(|(a, k)| ((*a).to_owned(), (*k).to_owned()))
        .collect();
    for e in extra {
        if !todo.contains(e) {
            todo.push(e.clone());
        }
    }
    if volumes {
        todo.push(("v1".into(), "PersistentVolumeClaim".into()));
    }
    let mut report = Report::default();
    let mut waits = Vec::new();
    for (api_version, kind) in &todo {
        let (ar, scope) = match kinds.resolve(kenv, api_version, kind).await {
            Ok(r) => r,
            // A CRD removed meanwhile has nothing left to delete.
            Err(e) if e.kind == KubeErrorKind::UnknownKind => continue,
            Err(e) => return Err(e),
        };
        let api = api_for(kenv, &ar, scope);
        let list = api
            .list(&ListParams::default().labels(&sel))
            .await
            .map_err(|e| error::explain_in(&e, &kenv.context, &format!("listing {kind}s")))?;
        for obj in list.items {
            let name = obj.metadata.name.clone().unwrap_or_default();
            let uid = obj.metadata.uid.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => {
                    return Err(error::explain_in(
                        &e,
                        &kenv.context,
                        &format!("deleting {kind} {name}"),
                    ))
                }
            }
            report.deleted.push(format!("{kind}/{name}"));
            let api = api.clone();
            waits.push(
                async move {
                    let _ = await_condition(api, &name, conditions::is_deleted(&uid)).await;
                }
                .boxed(),
            );
        }
    }
    // Pods go with their owners; wait for them too, so nothing keeps running.
    let pods: Api<DynamicObject> = Api::namespaced_with(
        kenv.client.clone(),
        &kenv.namespace,
        &ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
    );
    if let Ok(list) = pods.list(&ListParams::default().labels(&sel)).await {
        for pod in list.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let api = pods.clone();
            waits.push(
                async move {
                    let _ = await_condition(api, &name, conditions::is_deleted(&uid)).await;
                }
                .boxed(),
            );
        }
    }
    let _ = tokio::time::timeout(GONE_DEADLINE, futures::future::join_all(waits)).await;

    if !volumes {
        let pvcs: Api<PersistentVolumeClaim> =
            Api::namespaced(kenv.client.clone(), &kenv.namespace);
        if let Ok(list) = pvcs.list(&ListParams::default().labels(&sel)).await {
            report.kept_volumes = list
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
        }
    }
    let nss: Api<Namespace> = Api::all(kenv.client.clone());
    if let Ok(Some(ns)) = nss.get_opt(&kenv.namespace).await {
        let created = ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CREATED_ANNOTATION))
            .is_some();
        // Another environment may share the namespace: its objects keep it alive.
        let others = other_environments_in(kenv).await;
        if created
            && report.kept_volumes.is_empty()
            && !others
            && ns.metadata.deletion_timestamp.is_none()
        {
            let uid = ns.metadata.uid.clone().unwrap_or_default();
            match nss
                .delete(&kenv.namespace, &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    let _ = tokio::time::timeout(
                        GONE_DEADLINE,
                        await_condition(nss, &kenv.namespace, conditions::is_deleted(&uid)),
                    )
                    .await;
                    report.namespace_removed = true;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(error::explain_in(
                        &e,
                        &kenv.context,
                        &format!("deleting namespace {}", kenv.namespace),
                    ))
                }
            }
        }
    }
    Ok(report)
}

/// Whether objects of another devenv environment live in this namespace.
async fn other_environments_in(kenv: &ClusterConn) -> bool {
    let sel = format!(
        "{}={},{}!={}",
        super::MANAGED_BY,
        super::MANAGED_BY_VALUE,
        super::ENV_LABEL,
        kenv.env
    );
    let lp = ListParams::default().labels(&sel).limit(1);
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(kenv.client.clone(), &kenv.namespace);
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(kenv.client.clone(), &kenv.namespace);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(kenv.client.clone(), &kenv.namespace);
    // On an error, keep the namespace: removing it is the irreversible choice.
    deployments
        .list(&lp)
        .await
        .map_or(true, |l| !l.items.is_empty())
        || services
            .list(&lp)
            .await
            .map_or(true, |l| !l.items.is_empty())
        || pvcs.list(&lp).await.map_or(true, |l| !l.items.is_empty())
}

fn api_for(kenv: &ClusterConn, ar: &ApiResource, scope: Scope) -> Api<DynamicObject> {
    match scope {
        Scope::Namespaced => Api::namespaced_with(kenv.client.clone(), &kenv.namespace, ar),
        Scope::Cluster => Api::all_with(kenv.client.clone(), ar),
    }
}
