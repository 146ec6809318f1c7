//! `devenv cluster ...`: tables and the stable `--json` contract.
//!
//! `cluster create|delete --json`: `{"cluster": CLUSTER, "output": "what k3d printed"}`;
//! `cluster status --json`: `{"cluster": CLUSTER}`; `cluster ls --json`:
//! `{"clusters": [CLUSTER...]}`, where CLUSTER is `{"name", "provider", "context",
//! "namespace", "reachable", "message", "project", "created"}` (`project` and
//! `created`, RFC 3339, are null when unknown). Add fields; never rename.

use std::time::SystemTime;

use devenv_api::pb;
use serde::Serialize;

use super::color::{paint, GREEN, RED};
use super::table;
use super::time::{rfc3339, short_duration, to_system_time};

#[derive(Debug, Serialize)]
pub struct ClusterJson<'a> {
    pub name: &'a str,
    /// `k3d` or `kubeconfig`.
    pub provider: &'a str,
    pub context: &'a str,
    pub namespace: &'a str,
    /// Whether the API server answered just now.
    pub reachable: bool,
    /// The server version when reachable, else why not (one line, with a hint).
    pub message: &'a str,
    /// Project directory of the environment it belongs to.
    pub project: Option<&'a str>,
    /// When devenv created it (RFC 3339); null for clusters devenv did not create.
    pub created: Option<String>,
}

impl<'a> From<&'a pb::ClusterInfo> for ClusterJson<'a> {
    fn from(c: &'a pb::ClusterInfo) -> Self {
        Self {
            name: &c.name,
            provider: &c.provider,
            context: &c.context,
            namespace: &c.namespace,
            reachable: c.reachable,
            message: &c.message,
            project: Some(c.project.as_str()).filter(|p| !p.is_empty()),
            created: Some(rfc3339(c.created.as_ref())).filter(|t| !t.is_empty()),
        }
    }
}

#[derive(Debug, Serialize)]
struct OneJson<'a> {
    cluster: ClusterJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a str>,
}

/// `create`/`delete` (with k3d's output) and `status` (without).
pub fn json(reply: &pb::ClusterResponse, with_output: bool) -> String {
    let empty = pb::ClusterInfo::default();
    let doc = OneJson {
        cluster: ClusterJson::from(reply.cluster.as_ref().unwrap_or(&empty)),
        output: with_output.then_some(reply.output.as_str()),
    };
    serde_json::to_string_pretty(&doc).expect("cluster JSON is always serialisable")
}

pub fn list_json(clusters: &[pb::ClusterInfo]) -> String {
    let doc = serde_json::json!({
        "clusters": clusters.iter().map(ClusterJson::from).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&doc).expect("cluster JSON is always serialisable")
}

fn reachable(color: bool, yes: bool) -> String {
    if yes {
        paint(color, GREEN, "yes")
    } else {
        paint(color, RED, "no")
    }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.into()
    }
}

/// `cluster status`: one row.
pub fn status_table(c: &pb::ClusterInfo, color: bool) -> String {
    let row = vec![
        or_dash(&c.name),
        c.provider.clone(),
        or_dash(&c.context),
        or_dash(&c.namespace),
        reachable(color, c.reachable),
        c.message.clone(),
    ];
    table::render(
        &[
            "NAME",
            "PROVIDER",
            "CONTEXT",
            "NAMESPACE",
            "REACHABLE",
            "MESSAGE",
        ],
        &[row],
    )
}

/// `cluster ls`.
pub fn list_table(clusters: &[pb::ClusterInfo], now: SystemTime, color: bool) -> String {
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            let age = c
                .created
                .as_ref()
                .and_then(to_system_time)
                .and_then(|t| now.duration_since(t).ok())
                .map(short_duration)
                .unwrap_or_else(|| "-".into());
            vec![
                c.name.clone(),
                c.provider.clone(),
                or_dash(&c.context),
                reachable(color, c.reachable),
                age,
                or_dash(&c.project),
                c.message.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "PROVIDER",
            "CONTEXT",
            "REACHABLE",
            "AGE",
            "PROJECT",
            "MESSAGE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> pb::ClusterInfo {
        pb::ClusterInfo {
            name: "shop-local".into(),
            provider: "k3d".into(),
            context: "k3d-shop-local".into(),
            namespace: "devenv-shop".into(),
            reachable: false,
            message: "cannot reach the API server of context `k3d-shop-local`: connection refused (hint: is the cluster running? check with `devenv cluster status`)".into(),
            project: "/src/shop".into(),
            created: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
        }
    }

    #[test]
    fn json_is_the_documented_contract() {
        let reply = pb::ClusterResponse {
            cluster: Some(sample()),
            output: "INFO[0000] created\n".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&json(&reply, true)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "cluster": {
                    "name": "shop-local", "provider": "k3d", "context": "k3d-shop-local",
                    "namespace": "devenv-shop", "reachable": false,
                    "message": sample().message, "project": "/src/shop",
                    "created": "2023-11-14T22:13:20.000Z",
                },
                "output": "INFO[0000] created\n",
            })
        );
        let status = pb::ClusterResponse {
            cluster: Some(pb::ClusterInfo {
                provider: "kubeconfig".into(),
                project: String::new(),
                created: None,
                ..sample()
            }),
            output: String::new(),
        };
        let v: serde_json::Value = serde_json::from_str(&json(&status, false)).unwrap();
        assert!(v.get("output").is_none());
        assert_eq!(v["cluster"]["created"], serde_json::Value::Null);
        assert_eq!(v["cluster"]["project"], serde_json::Value::Null);
        let v: serde_json::Value = serde_json::from_str(&list_json(&[])).unwrap();
        assert_eq!(v, serde_json::json!({ "clusters": [] }));
    }

    #[test]
    fn tables() {
        let c = sample();
        let out = status_table(&c, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0]
            .starts_with("NAME        PROVIDER  CONTEXT         NAMESPACE    REACHABLE  MESSAGE"));
        assert!(lines[1].starts_with(
            "shop-local  k3d       k3d-shop-local  devenv-shop  no         cannot reach"
        ));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 300);
        let out = list_table(&[c], now, false);
        let row = out.lines().nth(1).unwrap();
        assert!(
            row.starts_with(
                "shop-local  k3d       k3d-shop-local  no         5m   /src/shop  cannot reach"
            ),
            "{row}"
        );
    }
}
