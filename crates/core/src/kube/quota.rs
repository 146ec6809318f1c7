//! The namespace's ResourceQuota and LimitRange from `spec.cluster.quota` and
//! `spec.cluster.limitRange`, applied server-side (names [`QUOTA_NAME`],
//! [`LIMITS_NAME`]) when the environment connects (`up`, `workspace create`) and
//! again whenever the config's values change. A key removed from the config removes
//! devenv's object. They carry no environment label: they belong to the namespace, and
//! `down` keeps them while workspaces or kept volumes keep the namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{json, Value};

use super::{
    error, ClusterConn, KubeError, KubeErrorKind, FIELD_MANAGER, MANAGED_BY, MANAGED_BY_VALUE,
};
use crate::config::{ContainerLimits, NamespacePolicy};

pub const QUOTA_NAME: &str = "devenv-quota";
pub const LIMITS_NAME: &str = "devenv-limits";

/// The ResourceQuota of `hard`.
pub fn quota_object(namespace: &str, hard: &BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": QUOTA_NAME,
            "namespace": namespace,
            "labels": { MANAGED_BY: MANAGED_BY_VALUE },
        },
        "spec": { "hard": hard },
    })
}

/// The LimitRange of one `type: Container` item.
pub fn limits_object(namespace: &str, l: &ContainerLimits) -> Value {
    let mut item = json!({ "type": "Container" });
    for (key, map) in [
        ("max", &l.max),
        ("min", &l.min),
        ("default", &l.default),
        ("defaultRequest", &l.default_request),
    ] {
        if !map.is_empty() {
            item[key] = json!(map);
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {
            "name": LIMITS_NAME,
            "namespace": namespace,
            "labels": { MANAGED_BY: MANAGED_BY_VALUE },
        },
        "spec": { "limits": [item] },
    })
}

/// Makes the namespace's quota and limits what `policy` says.
pub async fn apply(conn: &ClusterConn, policy: &NamespacePolicy) -> Result<(), KubeError> {
    let quotas: Api<ResourceQuota> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let limits: Api<LimitRange> = Api::namespaced(conn.client.clone(), &conn.namespace);
    if policy.quota.is_empty() {
        remove(conn, &quotas, "ResourceQuota", QUOTA_NAME).await?;
    } else {
        put(
            conn,
            &quotas,
            "ResourceQuota",
            QUOTA_NAME,
            &quota_object(&conn.namespace, &policy.quota),
        )
        .await?;
    }
    if policy.limit_range.is_empty() {
        remove(conn, &limits, "LimitRange", LIMITS_NAME).await?;
    } else {
        put(
            conn,
            &limits,
            "LimitRange",
            LIMITS_NAME,
            &limits_object(&conn.namespace, &policy.limit_range),
        )
        .await?;
    }
    Ok(())
}

async fn put<K>(
    conn: &ClusterConn,
    api: &Api<K>,
    kind: &str,
    name: &str,
    obj: &Value,
) -> Result<(), KubeError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map(|_| ())
    .map_err(|e| error::explain_in(&e, &conn.context, &format!("{kind} {name} (spec.cluster)")))
}

/// Deletes devenv's object if there is one. Not being allowed to delete it is not an
/// error: whoever may not delete it could not have made it either, and the minimal
/// Role (docs/rbac.md) has no say over quotas.
async fn remove<K>(
    conn: &ClusterConn,
    api: &Api<K>,
    kind: &str,
    name: &str,
) -> Result<(), KubeError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = error::explain_in(&e, &conn.context, &format!("{kind} {name}"));
            match e.kind {
                KubeErrorKind::Api(404 | 403) => Ok(()),
                _ => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_only_the_bounds_given() {
        let l = ContainerLimits {
            max: BTreeMap::from([("memory".into(), "256Mi".into())]),
            default: BTreeMap::from([("cpu".into(), "200m".into())]),
            ..Default::default()
        };
        let o = limits_object("ns", &l);
        assert_eq!(
            o["spec"]["limits"],
            json!([{ "type": "Container", "max": { "memory": "256Mi" }, "default": { "cpu": "200m" } }])
        );
        let q = quota_object("ns", &BTreeMap::from([("pods".into(), "10".into())]));
        assert_eq!(q["spec"]["hard"], json!({ "pods": "10" }));
        assert_eq!(q["metadata"]["labels"][MANAGED_BY], MANAGED_BY_VALUE);
    }
}
