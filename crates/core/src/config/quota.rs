//! `spec.cluster.quota` and `spec.cluster.limitRange`: the ResourceQuota and the
//! LimitRange devenv keeps in the environment's namespace (`kube::quota` applies them
//! at `up` and `workspace create`). A shared cluster's namespace per person is only
//! fair when each one is bounded; the values are Kubernetes' own resource names and
//! quantities, so what the cluster enforces is exactly what the config says.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::check::{is_quantity, Checker};
use super::raw::Text;

/// The raw `spec.cluster.limitRange`: per-container bounds and defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawLimitRange {
    pub max: Option<BTreeMap<String, Text>>,
    pub min: Option<BTreeMap<String, Text>>,
    /// The limits of a container that sets none.
    pub default: Option<BTreeMap<String, Text>>,
    /// The requests of a container that sets none.
    pub default_request: Option<BTreeMap<String, Text>>,
}

/// A LimitRange's `type: Container` item; every map resource -> quantity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerLimits {
    pub max: BTreeMap<String, String>,
    pub min: BTreeMap<String, String>,
    pub default: BTreeMap<String, String>,
    pub default_request: BTreeMap<String, String>,
}

impl ContainerLimits {
    pub fn is_empty(&self) -> bool {
        self.max.is_empty()
            && self.min.is_empty()
            && self.default.is_empty()
            && self.default_request.is_empty()
    }
}

/// What devenv keeps in the namespace; empty parts mean "none of ours".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamespacePolicy {
    /// The ResourceQuota's `hard` (e.g. `requests.cpu`, `limits.memory`, `pods`,
    /// `persistentvolumeclaims`, `requests.storage`, `count/deployments.apps`).
    pub quota: BTreeMap<String, String>,
    pub limit_range: ContainerLimits,
}

/// A resource name as Kubernetes writes them: `cpu`, `requests.storage`,
/// `count/deployments.apps`, `requests.nvidia.com/gpu`.
fn is_resource_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '/'))
}

fn quantities(
    c: &mut Checker<'_>,
    path: &str,
    raw: Option<BTreeMap<String, Text>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in raw.unwrap_or_default() {
        let at = format!("{path}.{k}");
        if !is_resource_name(&k) {
            c.error(
                &at,
                format!("`{k}` is not a resource name"),
                Some("e.g. `cpu`, `memory`, `requests.storage`, `pods`".into()),
            );
        } else if !is_quantity(&v.0) {
            c.error(
                &at,
                format!("`{}` is not a quantity", v.0),
                Some("e.g. `cpu: 500m`, `memory: 1Gi`, `pods: 10`".into()),
            );
        } else {
            out.insert(k, v.0);
        }
    }
    out
}

/// Checks the two keys of `spec.cluster`.
pub(crate) fn check(
    c: &mut Checker<'_>,
    quota: Option<BTreeMap<String, Text>>,
    limit_range: Option<RawLimitRange>,
) -> NamespacePolicy {
    let quota = quantities(c, "spec.cluster.quota", quota);
    let limit_range = match limit_range {
        None => ContainerLimits::default(),
        Some(raw) => ContainerLimits {
            max: quantities(c, "spec.cluster.limitRange.max", raw.max),
            min: quantities(c, "spec.cluster.limitRange.min", raw.min),
            default: quantities(c, "spec.cluster.limitRange.default", raw.default),
            default_request: quantities(
                c,
                "spec.cluster.limitRange.defaultRequest",
                raw.default_request,
            ),
        },
    };
    NamespacePolicy { quota, limit_range }
}

#[cfg(test)]
mod tests {
    use super::is_resource_name;

    #[test]
    fn resource_names_are_kubernetes_ones() {
        for ok in [
            "cpu",
            "requests.storage",
            "count/deployments.apps",
            "requests.nvidia.com/gpu",
            "pods",
        ] {
            assert!(is_resource_name(ok), "{ok}");
        }
        for bad in ["", "CPU", "cpu ", ".cpu", "limits.", "mem ory"] {
            assert!(!is_resource_name(bad), "{bad:?}");
        }
    }
}
