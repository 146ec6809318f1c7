//! How full the claims of running pods are, from the kubelet's stats summary
//! (`/api/v1/nodes/NODE/proxy/stats/summary`, through the API server): each pod's
//! volumes with their `pvcRef`, `usedBytes` and `capacityBytes`, as the kubelet last
//! measured them (it refreshes volume stats periodically: every minute by default).
//!
//! Preferred to `du` by exec: one request per node covers every pod on it, nothing
//! runs in anybody's pod (nor counts as their activity), and the cost does not grow
//! with the files. It needs `get` on `nodes/proxy`, a cluster-scoped right that the
//! minimal developer Role does not have (it reaches the kubelet's whole API): without
//! it the usage is unknown, with that reason, and everything else goes on. A stopped
//! workspace has no pod, so no usage either. Volumes the kubelet has no metrics of
//! (hostPath-backed: the local-path provisioner of k3d, kind and the test cluster)
//! are measured by `du -sk` in the pod instead ([`du_in_pod`]): bounded output, a
//! deadline, and not a workspace's activity signal (that is only its user's exec).

use std::collections::{BTreeMap, BTreeSet};

use super::ClusterConn;

/// One claim's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimUsage {
    pub used_bytes: u64,
    pub capacity_bytes: u64,
}

/// The usage of the claims mounted by pods of `conn`'s namespace on `nodes`, by claim
/// name; or why it is unknown (a sentence).
pub async fn claim_usage(
    conn: &ClusterConn,
    nodes: &BTreeSet<String>,
) -> Result<BTreeMap<String, ClaimUsage>, String> {
    let mut out = BTreeMap::new();
    for node in nodes {
        let url = format!("/api/v1/nodes/{node}/proxy/stats/summary");
        let req = http::Request::get(url)
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let summary: serde_json::Value = match conn.client.request(req).await {
            Ok(v) => v,
            Err(kube::Error::Api(s)) if s.code == 403 => {
                return Err(
                    "unknown: the Role lacks get on nodes/proxy (cluster scope), which reads the kubelet's volume stats"
                        .into(),
                )
            }
            Err(e) => {
                return Err(format!(
                    "unknown: node {node}'s stats: {}",
                    super::first_line(&e)
                ))
            }
        };
        out.extend(parse(&summary, &conn.namespace));
    }
    Ok(out)
}

/// How long `du` in one pod may take.
const DU_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);
/// Of `du`'s output, the bytes read (a line per claim).
const DU_OUTPUT_MAX: u64 = 64 * 1024;

/// The usage of the pod's claims in `only` by `du -sk` of their mount paths in
/// `container`: for volumes the kubelet has no stats of (hostPath-backed ones, as the
/// local-path provisioner of k3d and kind makes, have no metrics). Capacity unknown (0).
pub async fn du_in_pod(
    conn: &ClusterConn,
    pod: &k8s_openapi::api::core::v1::Pod,
    container: &str,
    only: &[String],
) -> Result<BTreeMap<String, ClaimUsage>, String> {
    use tokio::io::AsyncReadExt;
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(BTreeMap::new());
    };
    let claim_of: BTreeMap<&str, &str> = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| {
            let c = v.persistent_volume_claim.as_ref()?;
            only.contains(&c.claim_name)
                .then_some((v.name.as_str(), c.claim_name.as_str()))
        })
        .collect();
    let mounts: Vec<(&str, &str)> = spec
        .containers
        .iter()
        .filter(|c| c.name == container)
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .filter_map(|m| Some((m.mount_path.as_str(), *claim_of.get(m.name.as_str())?)))
        .collect();
    if mounts.is_empty() {
        return Ok(BTreeMap::new());
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut argv = vec!["du".to_owned(), "-sk".to_owned()];
    argv.extend(mounts.iter().map(|(p, _)| (*p).to_owned()));
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(conn.client.clone(), &conn.namespace);
    let params = kube::api::AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(false);
    let run = async {
        let mut proc = api
            .exec(&name, argv, &params)
            .await
            .map_err(|e| format!("unknown: du in pod {name}: {}", super::first_line(&e)))?;
        let mut out = String::new();
        if let Some(r) = proc.stdout() {
            let _ = r.take(DU_OUTPUT_MAX).read_to_string(&mut out).await;
        }
        let _ = proc.join().await;
        Ok::<_, String>(out)
    };
    let out = tokio::time::timeout(DU_LIMIT, run).await.map_err(|_| {
        format!(
            "unknown: du in pod {name} took over {}s",
            DU_LIMIT.as_secs()
        )
    })??;
    let mut got = BTreeMap::new();
    for line in out.lines() {
        let Some((kib, path)) = line.split_once('\t') else {
            continue;
        };
        let (Ok(kib), Some((_, claim))) = (
            kib.trim().parse::<u64>(),
            mounts.iter().find(|(p, _)| *p == path.trim()),
        ) else {
            continue;
        };
        got.insert(
            (*claim).to_owned(),
            ClaimUsage {
                used_bytes: kib * 1024,
                capacity_bytes: 0,
            },
        );
    }
    Ok(got)
}

/// The claims of `namespace`'s pods in a stats summary.
fn parse(summary: &serde_json::Value, namespace: &str) -> BTreeMap<String, ClaimUsage> {
    let mut out = BTreeMap::new();
    for pod in summary["pods"].as_array().into_iter().flatten() {
        if pod["podRef"]["namespace"].as_str() != Some(namespace) {
            continue;
        }
        for v in pod["volume"].as_array().into_iter().flatten() {
            let Some(claim) = v["pvcRef"]["name"].as_str() else {
                continue;
            };
            if v["pvcRef"]["namespace"]
                .as_str()
                .is_some_and(|n| n != namespace)
            {
                continue;
            }
            out.insert(
                claim.to_owned(),
                ClaimUsage {
                    used_bytes: v["usedBytes"].as_u64().unwrap_or(0),
                    capacity_bytes: v["capacityBytes"].as_u64().unwrap_or(0),
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_of_the_namespace_are_read_from_a_summary() {
        let summary = serde_json::json!({
            "node": { "nodeName": "n1" },
            "pods": [
                { "podRef": { "name": "ws-dev-ann-0", "namespace": "team" },
                  "volume": [
                    { "name": "workspace", "usedBytes": 5_242_880u64, "capacityBytes": 16_777_216u64,
                      "pvcRef": { "name": "workspace-ws-dev-ann-0", "namespace": "team" } },
                    { "name": "home", "usedBytes": 4096 },
                  ] },
                { "podRef": { "name": "other", "namespace": "elsewhere" },
                  "volume": [ { "name": "data", "usedBytes": 1,
                      "pvcRef": { "name": "data-other", "namespace": "elsewhere" } } ] },
            ]
        });
        let got = parse(&summary, "team");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            got["workspace-ws-dev-ann-0"],
            ClaimUsage {
                used_bytes: 5_242_880,
                capacity_bytes: 16_777_216
            }
        );
        assert!(parse(&serde_json::json!({}), "team").is_empty());
    }
}
