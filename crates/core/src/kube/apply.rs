//! Server-side apply of arbitrary objects (typed kinds devenv renders and whatever a
//! manifests directory holds), under field manager `devenv`, in dependency order.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use serde_json::Value;

use super::{error, ClusterConn, KubeError, FIELD_MANAGER};

/// Resolves kinds to API resources once per daemon run.
#[derive(Default)]
pub struct Kinds {
    cache: Mutex<HashMap<(String, String), (ApiResource, Scope)>>,
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kinds")
    }
}

/// apiVersion and kind of an object, as a pair.
pub fn type_of(obj: &Value) -> Option<(String, String)> {
    Some((
        obj.get("apiVersion")?.as_str()?.to_owned(),
        obj.get("kind")?.as_str()?.to_owned(),
    ))
}

/// Apply order: what others refer to goes first.
pub fn rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount"
        | "Secret"
        | "ConfigMap"
        | "PersistentVolumeClaim"
        | "StorageClass"
        | "PersistentVolume" => 2,
        "ClusterRole" | "Role" => 3,
        "ClusterRoleBinding" | "RoleBinding" => 4,
        // Services, workloads and the rest go together: nothing among them needs
        // another to exist first (service links are off), and one round trip of
        // parallel requests is the latency floor.
        _ => 5,
    }
}

fn builtin(api_version: &str, kind: &str) -> Option<(ApiResource, Scope)> {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    let ns = Scope::Namespaced;
    Some(match (api_version, kind) {
        ("apps/v1", "Deployment") => (ApiResource::erase::<apps::Deployment>(&()), ns),
        ("apps/v1", "StatefulSet") => (ApiResource::erase::<apps::StatefulSet>(&()), ns),
        ("apps/v1", "DaemonSet") => (ApiResource::erase::<apps::DaemonSet>(&()), ns),
        ("v1", "Service") => (ApiResource::erase::<core::Service>(&()), ns),
        ("v1", "Secret") => (ApiResource::erase::<core::Secret>(&()), ns),
        ("v1", "ConfigMap") => (ApiResource::erase::<core::ConfigMap>(&()), ns),
        ("v1", "PersistentVolumeClaim") => {
            (ApiResource::erase::<core::PersistentVolumeClaim>(&()), ns)
        }
        ("v1", "ServiceAccount") => (ApiResource::erase::<core::ServiceAccount>(&()), ns),
        ("v1", "Pod") => (ApiResource::erase::<core::Pod>(&()), ns),
        ("batch/v1", "Job") => (ApiResource::erase::<batch::Job>(&()), ns),
        ("networking.k8s.io/v1", "Ingress") => (
            ApiResource::erase::<k8s_openapi::api::networking::v1::Ingress>(&()),
            ns,
        ),
        ("networking.k8s.io/v1", "NetworkPolicy") => (
            ApiResource::erase::<k8s_openapi::api::networking::v1::NetworkPolicy>(&()),
            ns,
        ),
        _ => return None,
    })
}

impl Kinds {
    /// The API resource for an apiVersion/kind: built-in table, else discovery (cached).
    pub async fn resolve(
        &self,
        kenv: &ClusterConn,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, Scope), KubeError> {
        if let Some(r) = builtin(api_version, kind) {
            return Ok(r);
        }
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(r) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(r.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps): (ApiResource, ApiCapabilities) =
            kube::discovery::pinned_kind(&kenv.client, &gvk)
                .await
                .map_err(|e| match e {
                    kube::Error::Discovery(_) => unknown_kind(api_version, kind),
                    kube::Error::Api(ref s) if s.code == 404 => unknown_kind(api_version, kind),
                    other => error::explain(&other, &kenv.context),
                })?;
        let r = (ar, caps.scope);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, r.clone());
        Ok(r)
    }

    /// Applies one object (namespace defaulted to the environment's for namespaced
    /// kinds). `dry_run` asks the server to validate without persisting.
    pub async fn apply(
        &self,
        kenv: &ClusterConn,
        obj: &Value,
        dry_run: bool,
    ) -> Result<DynamicObject, KubeError> {
        let (api_version, kind) =
            type_of(obj).ok_or_else(|| KubeError::new("object has no apiVersion/kind", ""))?;
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| KubeError::new(format!("{kind} has no metadata.name"), ""))?
            .to_owned();
        let (ar, scope) = self.resolve(kenv, &api_version, &kind).await?;
        let api: Api<DynamicObject> = match scope {
            Scope::Namespaced => {
                let ns = obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(&kenv.namespace);
                Api::namespaced_with(kenv.client.clone(), ns, &ar)
            }
            Scope::Cluster => Api::all_with(kenv.client.clone(), &ar),
        };
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = dry_run;
        api.patch(&name, &params, &Patch::Apply(obj))
            .await
            .map_err(|e| error::explain_in(&e, &kenv.context, &format!("{kind} {name}")))
    }
}

/// Applies objects in [`rank`] order; objects of one rank go in parallel.
pub async fn apply_all(kinds: &Kinds, kenv: &ClusterConn, objs: &[Value]) -> Result<(), KubeError> {
    let mut order: Vec<&Value> = objs.iter().collect();
    order.sort_by_key(|o| rank(o.get("kind").and_then(Value::as_str).unwrap_or("")));
    let mut i = 0;
    while i < order.len() {
        let r = rank(order[i]["kind"].as_str().unwrap_or(""));
        let end = order[i..]
            .iter()
            .position(|o| rank(o["kind"].as_str().unwrap_or("")) != r)
            .map_or(order.len(), |p| i + p);
        let batch =
            futures::future::join_all(order[i..end].iter().map(|o| kinds.apply(kenv, o, false)))
                .await;
        for r in batch {
            r?;
        }
        i = end;
    }
    Ok(())
}

fn unknown_kind(api_version: &str, kind: &str) -> KubeError {
    KubeError::new(
        format!("the cluster does not know kind `{kind}` in `{api_version}`"),
        "check apiVersion/kind, or install the CRD that defines it",
    )
    .with_kind(super::error::KubeErrorKind::UnknownKind)
}
