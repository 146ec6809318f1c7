//! A workspace's objects and what is done to them: one StatefulSet per workspace and
//! owner (`ws-<name>-<owner>`) with a volumeClaimTemplate per volume, a Secret of the
//! values it gets as environment variables, a Service for its ports, and a
//! NetworkPolicy isolating its pod (see [`network_policy`]).
//!
//! Why a StatefulSet per user rather than one StatefulSet with an ordinal per user:
//! ordinals are positional (user 3 leaving means scaling down 4..n or leaving a hole),
//! every pod of one StatefulSet shares one template (one image, one set of secrets and
//! resources for everybody), and stopping one person's workspace is a scale to 0 of
//! theirs alone. Per user, stop/start/delete touch only that person's objects, and the
//! owner is a label on everything.
//!
//! Workspace objects carry [`MANAGED_BY`] and their own labels but not the
//! environment label: `devenv down` of the environment leaves them alone (a person's
//! workspace outlives the services they run).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{json, Value};

use super::{error, ClusterConn, KubeError, MANAGED_BY, MANAGED_BY_VALUE};
use crate::config::{Environment, Workspace, WORKSPACE_HOME, WORKSPACE_UID};

pub const WORKSPACE_LABEL: &str = "devenv.dev/workspace";
pub const OWNER_LABEL: &str = "devenv.dev/owner";
/// The environment a workspace belongs to (not [`super::ENV_LABEL`], see above).
pub const OF_ENV_LABEL: &str = "devenv.dev/workspace-of";
/// On the pod template: the keyed revisions of the secrets it reads (never a value).
pub const SECRETS_REVISION: &str = "devenv.dev/secretsRevision";
/// The container's name in the pod.
pub const CONTAINER: &str = "workspace";

/// What runs when the config gives no command: nothing, until the pod is stopped.
const IDLE_COMMAND: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// The labels of one workspace's objects (and its pods' selector).
pub fn labels(env: &str, ws: &Workspace) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (OF_ENV_LABEL.to_owned(), env.to_owned()),
        (WORKSPACE_LABEL.to_owned(), ws.name.clone()),
        (OWNER_LABEL.to_owned(), ws.owner.clone()),
    ])
}

/// Selector of one workspace's pods.
pub fn selector(env: &str, ws: &Workspace) -> String {
    labels(env, ws)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Selector of the workspaces of an environment: the owner's, or everybody's.
pub fn list_selector(env: &str, owner: Option<&str>) -> String {
    let mut s = format!("{MANAGED_BY}={MANAGED_BY_VALUE},{OF_ENV_LABEL}={env}");
    if let Some(o) = owner {
        s.push_str(&format!(",{OWNER_LABEL}={o}"));
    }
    s
}

fn secret_name(ws: &Workspace) -> String {
    format!("{}-env", ws.object_name())
}

/// The objects of `ws` in `env` (whose external secrets are read), `replicas` wanted.
pub fn objects(env: &Environment, ws: &Workspace, replicas: u32) -> Vec<Value> {
    let name = ws.object_name();
    let labels = labels(&env.name, ws);
    let mut out = Vec::new();

    // One Secret of every value the workspace gets from `spec.secrets`, later ones
    // winning, so the pod reads one object it owns.
    let mut data = BTreeMap::new();
    let mut revisions = Vec::new();
    for s in &ws.secrets {
        if let Some(secret) = env.secrets.iter().find(|d| &d.name == s) {
            data.extend(secret.data.clone());
            revisions.push(format!("{}={}", secret.name, secret.revision));
        }
    }
    if !ws.secrets.is_empty() {
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": secret_name(ws), "labels": labels },
            "type": "Opaque",
            "stringData": data,
        }));
    }

    let mut env_vars = vec![json!({ "name": "HOME", "value": WORKSPACE_HOME })];
    if let Some(h) = ws.volumes.iter().find(|v| v.name == "history") {
        if !ws.env.contains_key("HISTFILE") {
            env_vars.push(json!({
                "name": "HISTFILE",
                "value": format!("{}/.sh_history", h.mount_path.trim_end_matches('/')),
            }));
        }
    }
    env_vars.extend(ws.env.iter().map(|(k, v)| json!({ "name": k, "value": v })));
    let env_from: Vec<Value> = if ws.secrets.is_empty() {
        Vec::new()
    } else {
        vec![json!({ "secretRef": { "name": secret_name(ws) } })]
    };
    let mut mounts = vec![json!({ "name": "home", "mountPath": WORKSPACE_HOME })];
    if ws.read_only_root_filesystem {
        mounts.push(json!({ "name": "tmp", "mountPath": "/tmp" }));
    }
    mounts.extend(
        ws.volumes
            .iter()
            .map(|v| json!({ "name": v.name, "mountPath": v.mount_path })),
    );
    let security = json!({
        "runAsNonRoot": true,
        "runAsUser": WORKSPACE_UID,
        "runAsGroup": WORKSPACE_UID,
        "allowPrivilegeEscalation": false,
        "privileged": false,
        "capabilities": { "drop": ["ALL"] },
        "readOnlyRootFilesystem": ws.read_only_root_filesystem,
        "seccompProfile": { "type": "RuntimeDefault" },
    });
    let workdir = ws
        .volumes
        .iter()
        .find(|v| v.name == "workspace")
        .map_or(WORKSPACE_HOME, |v| v.mount_path.as_str());
    let command: Vec<String> = if ws.command.is_empty() {
        vec!["sh".into(), "-c".into(), IDLE_COMMAND.into()]
    } else {
        ws.command.clone()
    };
    let mut container = json!({
        "name": CONTAINER,
        "image": ws.image,
        "command": command,
        "workingDir": workdir,
        "env": env_vars,
        "envFrom": env_from,
        "volumeMounts": mounts,
        "securityContext": security,
        "ports": ws.ports.iter().map(|p| json!({
            "name": format!("p-{p}"), "containerPort": p, "protocol": "TCP",
        })).collect::<Vec<_>>(),
    });
    if let Some(r) = &ws.resources {
        container["resources"] = json!({ "requests": r.requests, "limits": r.limits });
    }
    let init: Vec<Value> = ws
        .init
        .iter()
        .enumerate()
        .map(|(i, cmd)| {
            let mut c = container.clone();
            c["name"] = json!(format!("init-{i}"));
            c["command"] = json!(["sh", "-c", cmd]);
            if let Some(o) = c.as_object_mut() {
                o.remove("ports");
            }
            c
        })
        .collect();
    let mut pod_volumes = vec![json!({ "name": "home", "emptyDir": {} })];
    if ws.read_only_root_filesystem {
        pod_volumes.push(json!({ "name": "tmp", "emptyDir": {} }));
    }
    let claims: Vec<Value> = ws
        .volumes
        .iter()
        .map(|v| {
            let mut spec = json!({
                "accessModes": ["ReadWriteOnce"],
                "resources": { "requests": { "storage": v.size } },
            });
            if let Some(class) = &v.storage_class {
                spec["storageClassName"] = json!(class);
            }
            json!({ "metadata": { "name": v.name, "labels": labels }, "spec": spec })
        })
        .collect();
    out.push(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": { "matchLabels": labels },
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain",
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": { SECRETS_REVISION: revisions.join(",") },
                },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": WORKSPACE_UID,
                        "runAsGroup": WORKSPACE_UID,
                        "fsGroup": WORKSPACE_UID,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "initContainers": init,
                    "containers": [container],
                    "volumes": pod_volumes,
                },
            },
            "volumeClaimTemplates": claims,
        },
    }));
    out.push(network_policy(&name, &labels));
    if !ws.ports.is_empty() {
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "selector": labels,
                "ports": ws.ports.iter().map(|p| json!({
                    "name": format!("p-{p}"), "port": p, "targetPort": p, "protocol": "TCP",
                })).collect::<Vec<_>>(),
            },
        }));
    }
    out
}

/// Private, shared and link-local IPv4 ranges: the cluster's pods and Services, the
/// node, other machines of the site and cloud metadata endpoints are not "internet".
const NOT_INTERNET_V4: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
];
/// Unique-local and link-local IPv6 ranges, for the same reason.
const NOT_INTERNET_V6: [&str; 2] = ["fc00::/7", "fe80::/10"];

/// The workspace pod's NetworkPolicy: it selects only that pod and lists both policy
/// types, so everything it does not allow is denied (a default deny for the pod) —
/// ingress only from pods of the same namespace (another namespace, another user's on a
/// shared cluster, cannot reach it), egress to DNS on port 53 (wherever the cluster's
/// resolver runs), to the namespace's own pods, and to the internet (any address but
/// [`NOT_INTERNET_V4`] / [`NOT_INTERNET_V6`]). A cluster without a NetworkPolicy
/// enforcer keeps the object and enforces nothing (README, "Team workspaces").
pub fn network_policy(name: &str, labels: &BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "podSelector": { "matchLabels": labels },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{ "from": [{ "podSelector": {} }] }],
            "egress": [
                { "ports": [
                    { "protocol": "UDP", "port": 53 },
                    { "protocol": "TCP", "port": 53 },
                ] },
                { "to": [{ "podSelector": {} }] },
                { "to": [
                    { "ipBlock": { "cidr": "0.0.0.0/0", "except": NOT_INTERNET_V4 } },
                    { "ipBlock": { "cidr": "::/0", "except": NOT_INTERNET_V6 } },
                ] },
            ],
        },
    })
}

/// The StatefulSet of a workspace as the cluster has it now.
pub async fn get(conn: &ClusterConn, ws: &Workspace) -> Result<Option<StatefulSet>, KubeError> {
    let api: Api<StatefulSet> = Api::namespaced(conn.client.clone(), &conn.namespace);
    api.get_opt(&ws.object_name()).await.map_err(|e| {
        error::explain_in(
            &e,
            &conn.context,
            &format!("StatefulSet {}", ws.object_name()),
        )
    })
}

/// The workspaces' StatefulSets of an environment in its namespace.
pub async fn list(
    conn: &ClusterConn,
    env: &str,
    owner: Option<&str>,
) -> Result<Vec<StatefulSet>, KubeError> {
    let api: Api<StatefulSet> = Api::namespaced(conn.client.clone(), &conn.namespace);
    api.list(&ListParams::default().labels(&list_selector(env, owner)))
        .await
        .map(|l| l.items)
        .map_err(|e| error::explain(&e, &conn.context))
}

/// Sets the StatefulSet's replicas (1 running, 0 stopped with its claims kept).
pub async fn set_replicas(conn: &ClusterConn, ws: &Workspace, n: u32) -> Result<(), KubeError> {
    let api: Api<StatefulSet> = Api::namespaced(conn.client.clone(), &conn.namespace);
    // A merge patch, like `kubectl scale`: an apply of just this field under devenv's
    // manager would give up the fields devenv applied before.
    let patch = json!({ "spec": { "replicas": n } });
    api.patch(
        &ws.object_name(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| {
        error::explain_in(
            &e,
            &conn.context,
            &format!("StatefulSet {}", ws.object_name()),
        )
    })
}

/// The workspace's pod (`<statefulset>-0`), if there is one.
pub async fn pod(conn: &ClusterConn, ws: &Workspace) -> Result<Option<Pod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let name = format!("{}-0", ws.object_name());
    api.get_opt(&name)
        .await
        .map_err(|e| error::explain_in(&e, &conn.context, &format!("pod {name}")))
}

/// The pods of an environment's workspaces, everybody's.
pub async fn pods(conn: &ClusterConn, env: &str) -> Result<Vec<Pod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    api.list(&ListParams::default().labels(&list_selector(env, None)))
        .await
        .map(|l| l.items)
        .map_err(|e| error::explain(&e, &conn.context))
}

/// The workspace's claims (one per volume), as `(name, requested size)`.
pub async fn claims(
    conn: &ClusterConn,
    env: &str,
    ws: &Workspace,
) -> Result<Vec<(String, String)>, KubeError> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let items = api
        .list(&ListParams::default().labels(&selector(env, ws)))
        .await
        .map_err(|e| error::explain(&e, &conn.context))?
        .items;
    Ok(items
        .into_iter()
        .map(|c| {
            let size = c
                .spec
                .and_then(|s| s.resources)
                .and_then(|r| r.requests)
                .and_then(|r| r.get("storage").map(|q| q.0.clone()))
                .unwrap_or_default();
            (c.metadata.name.unwrap_or_default(), size)
        })
        .collect())
}

/// Deletes the workspace's StatefulSet, Service and Secret (its pod goes with the
/// StatefulSet); with `volumes`, its claims too. Returns the claims kept.
pub async fn delete(
    conn: &ClusterConn,
    env: &str,
    ws: &Workspace,
    volumes: bool,
) -> Result<Vec<String>, KubeError> {
    let name = ws.object_name();
    let ns = &conn.namespace;
    let gone = |r: Result<_, kube::Error>, what: String| match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(error::explain_in(&e, &conn.context, &what)),
    };
    let dp = DeleteParams::foreground();
    let sts: Api<StatefulSet> = Api::namespaced(conn.client.clone(), ns);
    gone(
        sts.delete(&name, &dp).await.map(|_| ()),
        format!("StatefulSet {name}"),
    )?;
    let svc: Api<Service> = Api::namespaced(conn.client.clone(), ns);
    gone(
        svc.delete(&name, &dp).await.map(|_| ()),
        format!("Service {name}"),
    )?;
    let sec: Api<Secret> = Api::namespaced(conn.client.clone(), ns);
    let sname = secret_name(ws);
    gone(
        sec.delete(&sname, &dp).await.map(|_| ()),
        format!("Secret {sname}"),
    )?;
    let pol: Api<NetworkPolicy> = Api::namespaced(conn.client.clone(), ns);
    gone(
        pol.delete(&name, &dp).await.map(|_| ()),
        format!("NetworkPolicy {name}"),
    )?;
    let kept: Vec<String> = claims(conn, env, ws)
        .await?
        .into_iter()
        .map(|c| c.0)
        .collect();
    if !volumes {
        return Ok(kept);
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(conn.client.clone(), ns);
    for c in &kept {
        gone(
            pvcs.delete(c, &DeleteParams::background())
                .await
                .map(|_| ()),
            format!("PersistentVolumeClaim {c}"),
        )?;
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, SecretSource, WorkspaceVolume};

    fn workspace() -> Workspace {
        Workspace {
            name: "dev".into(),
            owner: "ann".into(),
            image: "busybox:1.35".into(),
            command: Vec::new(),
            resources: None,
            volumes: crate::config::DEFAULT_WORKSPACE_VOLUMES
                .iter()
                .map(|(n, p, s)| WorkspaceVolume {
                    name: (*n).into(),
                    mount_path: (*p).into(),
                    size: (*s).into(),
                    storage_class: None,
                })
                .collect(),
            secrets: vec!["creds".into()],
            env: BTreeMap::from([("EDITOR".into(), "vi".into())]),
            ports: vec![8080],
            idle_timeout: None,
            init: vec!["mkdir -p /workspace/src".into()],
            read_only_root_filesystem: true,
            cpu_active_millicores: 50,
            sync: Vec::new(),
        }
    }

    fn environment(ws: Workspace) -> Environment {
        Environment {
            name: "shop".into(),
            version: None,
            project_dir: "/p".into(),
            services: Vec::new(),
            cluster: None,
            volumes: Vec::new(),
            secrets: vec![Secret {
                name: "creds".into(),
                data: BTreeMap::from([("TOKEN".into(), "s3cret".into())]),
                source: SecretSource::Inline,
                revision: "abcd".into(),
            }],
            hooks: Default::default(),
            workspaces: vec![ws],
        }
    }

    fn by_kind<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
        objs.iter().find(|o| o["kind"] == kind).expect(kind)
    }

    #[test]
    fn a_workspace_is_a_statefulset_with_a_claim_per_volume_a_secret_and_a_service() {
        let ws = workspace();
        let env = environment(ws.clone());
        let objs = objects(&env, &ws, 1);
        let kinds: Vec<&str> = objs.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(kinds, ["Secret", "StatefulSet", "NetworkPolicy", "Service"]);
        let sts = by_kind(&objs, "StatefulSet");
        assert_eq!(sts["metadata"]["name"], "ws-dev-ann");
        assert_eq!(sts["spec"]["replicas"], 1);
        assert_eq!(sts["metadata"]["labels"][OWNER_LABEL], "ann");
        assert!(
            sts["metadata"]["labels"]
                .get(super::super::ENV_LABEL)
                .is_none(),
            "down of the environment must not select workspaces"
        );
        let claims = sts["spec"]["volumeClaimTemplates"].as_array().unwrap();
        let sizes: Vec<(&str, &str)> = claims
            .iter()
            .map(|c| {
                (
                    c["metadata"]["name"].as_str().unwrap(),
                    c["spec"]["resources"]["requests"]["storage"]
                        .as_str()
                        .unwrap(),
                )
            })
            .collect();
        assert_eq!(
            sizes,
            [("workspace", "10Gi"), ("history", "1Gi"), ("config", "1Gi")]
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"],
            "Retain"
        );
        let secret = by_kind(&objs, "Secret");
        assert_eq!(secret["metadata"]["name"], "ws-dev-ann-env");
        assert_eq!(secret["stringData"]["TOKEN"], "s3cret");
        let svc = by_kind(&objs, "Service");
        assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
        assert_eq!(
            svc["spec"]["selector"],
            sts["spec"]["selector"]["matchLabels"]
        );
    }

    #[test]
    fn the_pod_runs_as_uid_1000_without_privileges() {
        let ws = workspace();
        let objs = objects(&environment(ws.clone()), &ws, 1);
        let pod = &by_kind(&objs, "StatefulSet")["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsUser"], 1000);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["envFrom"][0]["secretRef"]["name"], "ws-dev-ann-env");
        let mounts: Vec<&str> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["mountPath"].as_str())
            .collect();
        assert_eq!(
            mounts,
            [
                "/home/dev",
                "/tmp",
                "/workspace",
                "/home/dev/.history",
                "/home/dev/.config"
            ]
        );
        let env: Vec<(&str, &str)> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
            .collect();
        assert!(env.contains(&("HISTFILE", "/home/dev/.history/.sh_history")));
        assert!(env.contains(&("EDITOR", "vi")));
        // Init commands run in the same image, as the same user, with the volumes.
        let init = &pod["initContainers"][0];
        assert_eq!(
            init["command"],
            json!(["sh", "-c", "mkdir -p /workspace/src"])
        );
        assert_eq!(init["securityContext"], c["securityContext"]);
        assert_eq!(init["volumeMounts"], c["volumeMounts"]);
        // The secret's value is in the Secret only, never in the pod spec.
        assert!(!pod.to_string().contains("s3cret"));
    }

    #[test]
    fn a_writable_root_gets_no_tmp_volume_and_no_ports_no_service() {
        let mut ws = workspace();
        ws.read_only_root_filesystem = false;
        ws.ports.clear();
        ws.secrets.clear();
        let objs = objects(&environment(ws.clone()), &ws, 0);
        let kinds: Vec<&str> = objs.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(kinds, ["StatefulSet", "NetworkPolicy"]);
        let pod = &objs[0]["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"], json!([{ "name": "home", "emptyDir": {} }]));
        assert_eq!(objs[0]["spec"]["replicas"], 0);
    }

    #[test]
    fn the_network_policy_denies_all_but_the_namespace_in_and_dns_namespace_internet_out() {
        let ws = workspace();
        let objs = objects(&environment(ws.clone()), &ws, 1);
        let pol = by_kind(&objs, "NetworkPolicy");
        let sts = by_kind(&objs, "StatefulSet");
        assert_eq!(pol["metadata"]["name"], "ws-dev-ann");
        // Only this workspace's pod, and both directions: what is not allowed is denied.
        assert_eq!(
            pol["spec"]["podSelector"]["matchLabels"],
            sts["spec"]["template"]["metadata"]["labels"]
        );
        assert_eq!(pol["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        // In: pods of this namespace only (no namespaceSelector, no ipBlock).
        assert_eq!(
            pol["spec"]["ingress"],
            json!([{ "from": [{ "podSelector": {} }] }])
        );
        let egress = pol["spec"]["egress"].as_array().unwrap();
        assert_eq!(
            egress[0],
            json!({ "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }] })
        );
        assert_eq!(egress[1], json!({ "to": [{ "podSelector": {} }] }));
        let v4 = &egress[2]["to"][0]["ipBlock"];
        assert_eq!(v4["cidr"], "0.0.0.0/0");
        for private in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
        ] {
            assert!(
                v4["except"].as_array().unwrap().contains(&json!(private)),
                "{private} is not internet: {v4}"
            );
        }
        assert_eq!(egress.len(), 3);
    }

    #[test]
    fn selectors_name_the_owner() {
        let ws = workspace();
        assert_eq!(
            list_selector("shop", Some("ann")),
            "app.kubernetes.io/managed-by=devenv,devenv.dev/workspace-of=shop,devenv.dev/owner=ann"
        );
        assert!(selector("shop", &ws).contains("devenv.dev/workspace=dev"));
    }
}
