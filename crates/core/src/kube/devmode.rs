//! Dev mode: a workload replaced in place by its dev version (image, command, probes
//! relaxed), and put back exactly afterwards.
//!
//! Crash safety: the original pod template is saved twice before anything changes —
//! in the daemon's state (the caller's `save`) and, in the same write that changes
//! the workload, as an annotation on the object itself. Whoever finds either copy
//! later (the daemon after a restart, the next `up`, `down`) restores from it. The
//! replica count is never touched, so nothing is ever left scaled to zero, and the
//! workload's other fields (labels, selector, annotations of others) are left as they
//! are: only the pod template and our two annotations change, with a
//! read-modify-replace guarded by the object's resourceVersion.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::api::{Api, DynamicObject, PostParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{explain_in, KubeError};
use super::rollout::Workload;
use crate::config::Command;

/// On the workload while in dev mode: the original pod template (a [`Backup`]).
pub const BACKUP_ANNOTATION: &str = "devenv.dev/dev-backup";
/// On the workload and its pod template while in dev mode: `environment/service`.
pub const DEV_ANNOTATION: &str = "devenv.dev/dev-mode";
/// Field manager of dev mode's writes (apart from devenv's server-side applies).
const FIELD_MANAGER: &str = "devenv-dev";
/// Attempts at a read-modify-replace that loses races with other writers.
const CONFLICT_RETRIES: usize = 8;

/// A workload's state before dev mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `spec.template` as the API server returned it before dev mode.
    pub template: Value,
    /// Seconds since the epoch when dev mode began.
    pub taken: u64,
}

impl Backup {
    /// `deployment/api`.
    pub fn display(&self) -> String {
        format!("{}/{}", self.kind.to_ascii_lowercase(), self.name)
    }
}

/// What the dev version changes.
#[derive(Debug, Clone, Default)]
pub struct DevSpec {
    pub image: Option<String>,
    pub command: Option<Command>,
    /// Run the command under [`SUPERVISOR`], so `onSync: restart` can restart it in
    /// place (`kill -HUP 1`) without a new pod.
    pub restartable: bool,
    /// `environment/service`, recorded in [`DEV_ANNOTATION`].
    pub owner: String,
}

/// Runs as the container's PID 1 in dev mode when the process must be restartable:
/// SIGHUP stops the command (TERM) and starts it again; TERM/INT stop it and exit.
pub const SUPERVISOR: &str = r#"child=; restart=
trap 'restart=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' HUP
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM INT
while :; do
  restart=
  "$@" &
  child=$!
  wait "$child"; status=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
  if [ -n "$restart" ]; then echo "devenv: restarting $1" >&2; continue; fi
  exit "$status"
done"#;

/// What restoring found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// The original template is back.
    Restored,
    /// The workload was not in dev mode (restored before, or re-created).
    NotInDevMode,
    /// The workload no longer exists.
    Gone,
}

fn api(client: &Client, w: &Workload) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), &w.namespace, &w.resource)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The backup recorded on `obj`, if it is in dev mode.
pub fn backup_on(obj: &DynamicObject) -> Option<Backup> {
    let raw = obj.metadata.annotations.as_ref()?.get(BACKUP_ANNOTATION)?;
    serde_json::from_str(raw).ok()
}

/// Puts `w` in dev mode. `save` records the backup durably before the workload
/// changes; if it fails nothing changes. A workload already in dev mode (a session
/// that died) keeps its original backup: the dev version is never backed up.
pub async fn enter(
    client: &Client,
    context: &str,
    w: &Workload,
    spec: &DevSpec,
    save: impl Fn(&Backup) -> Result<(), String>,
) -> Result<Backup, KubeError> {
    let api = api(client, w);
    let what = format!("{}/{}", w.kind.to_ascii_lowercase(), w.name);
    for _ in 0..CONFLICT_RETRIES {
        let mut obj = match api.get_opt(&w.name).await {
            Ok(Some(o)) => o,
            Ok(None) => {
                return Err(KubeError::new(
                    format!("{what} not found in namespace {}", w.namespace),
                    "dev mode replaces a workload that exists; check `workload:` or run `devenv up` first",
                ))
            }
            Err(e) => return Err(explain_in(&e, context, &what)),
        };
        let backup = match backup_on(&obj) {
            Some(b) => b,
            None => Backup {
                api_version: w.resource.api_version.clone(),
                kind: w.kind.clone(),
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                template: obj
                    .data
                    .pointer("/spec/template")
                    .cloned()
                    .ok_or_else(|| KubeError::new(format!("{what} has no pod template"), ""))?,
                taken: now_secs(),
            },
        };
        save(&backup).map_err(|e| {
            KubeError::new(
                format!("cannot record the backup of {what}: {e}"),
                "nothing was changed",
            )
        })?;
        let template = dev_template(&backup.template, spec);
        obj.data["spec"]["template"] = template;
        let annotations = obj
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        annotations.insert(
            BACKUP_ANNOTATION.into(),
            serde_json::to_string(&backup).unwrap_or_default(),
        );
        annotations.insert(DEV_ANNOTATION.into(), spec.owner.clone());
        match replace(&api, &obj).await {
            Ok(()) => return Ok(backup),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(explain_in(&e, context, &what)),
        }
    }
    Err(KubeError::new(
        format!("{what} kept changing while entering dev mode"),
        "try again",
    ))
}

/// Puts the original pod template of `w` back and removes dev mode's annotations.
/// The copy on the object wins over `fallback` (the daemon's copy): they are the same
/// unless the object was re-created.
pub async fn restore(
    client: &Client,
    context: &str,
    w: &Workload,
    fallback: Option<&Backup>,
) -> Result<Restored, KubeError> {
    let api = api(client, w);
    let what = format!("{}/{}", w.kind.to_ascii_lowercase(), w.name);
    for _ in 0..CONFLICT_RETRIES {
        let mut obj = match api.get_opt(&w.name).await {
            Ok(Some(o)) => o,
            Ok(None) => return Ok(Restored::Gone),
            Err(e) => return Err(explain_in(&e, context, &what)),
        };
        let on_object = backup_on(&obj);
        let in_dev =
            obj.metadata.annotations.as_ref().is_some_and(|a| {
                a.contains_key(DEV_ANNOTATION) || a.contains_key(BACKUP_ANNOTATION)
            });
        if !in_dev {
            return Ok(Restored::NotInDevMode);
        }
        let Some(backup) = on_object.or_else(|| fallback.cloned()) else {
            // Marked but without a readable backup: only the marks can go.
            strip(&mut obj);
            match replace(&api, &obj).await {
                Ok(()) => return Ok(Restored::NotInDevMode),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(explain_in(&e, context, &what)),
            }
        };
        obj.data["spec"]["template"] = backup.template.clone();
        strip(&mut obj);
        match replace(&api, &obj).await {
            Ok(()) => return Ok(Restored::Restored),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(explain_in(&e, context, &what)),
        }
    }
    Err(KubeError::new(
        format!("{what} kept changing while restoring it"),
        "run `devenv down` or `devenv up` again to retry",
    ))
}

/// The workload a backup was taken of.
pub fn workload_of(b: &Backup) -> Workload {
    let (group, version) = match b.api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), b.api_version.clone()),
    };
    let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &b.kind);
    Workload {
        resource: kube::api::ApiResource::from_gvk(&gvk),
        kind: b.kind.clone(),
        name: b.name.clone(),
        namespace: b.namespace.clone(),
        pods: String::new(),
    }
}

fn strip(obj: &mut DynamicObject) {
    if let Some(a) = obj.metadata.annotations.as_mut() {
        a.remove(BACKUP_ANNOTATION);
        a.remove(DEV_ANNOTATION);
    }
}

async fn replace(api: &Api<DynamicObject>, obj: &DynamicObject) -> Result<(), kube::Error> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let params = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    api.replace(&name, &params, obj).await.map(|_| ())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The dev version of a pod template: the first container gets the dev image and
/// command; every container loses its probes (a dev process restarts and pauses in a
/// debugger: kubelet must not kill it, and the pod counts as ready when running).
pub fn dev_template(original: &Value, spec: &DevSpec) -> Value {
    let mut t = original.clone();
    if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
        let ann = meta
            .entry("annotations")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(ann) = ann {
            ann.insert(DEV_ANNOTATION.into(), Value::String(spec.owner.clone()));
        }
    } else if let Some(obj) = t.as_object_mut() {
        obj.insert(
            "metadata".into(),
            json!({ "annotations": { DEV_ANNOTATION: spec.owner } }),
        );
    }
    let Some(containers) = t
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    else {
        return t;
    };
    for (i, c) in containers.iter_mut().enumerate() {
        let Some(c) = c.as_object_mut() else { continue };
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            c.remove(probe);
        }
        if i != 0 {
            continue;
        }
        if let Some(image) = &spec.image {
            c.insert("image".into(), Value::String(image.clone()));
        }
        if let Some(cmd) = &spec.command {
            let argv: Vec<String> = match cmd {
                Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
                Command::Exec(v) => v.clone(),
            };
            let full: Vec<String> = if spec.restartable {
                let mut v = vec![
                    "sh".to_owned(),
                    "-c".to_owned(),
                    SUPERVISOR.to_owned(),
                    "devenv-dev".to_owned(),
                ];
                v.extend(argv);
                v
            } else {
                argv
            };
            c.insert("command".into(), json!(full));
            c.remove("args");
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Value {
        json!({
            "metadata": { "labels": { "app": "web" } },
            "spec": { "containers": [
                { "name": "web", "image": "busybox", "args": ["httpd", "-f"],
                  "readinessProbe": { "tcpSocket": { "port": 80 } },
                  "livenessProbe": { "tcpSocket": { "port": 80 } } },
                { "name": "side", "image": "side", "startupProbe": { "exec": { "command": ["true"] } } }
            ] }
        })
    }

    #[test]
    fn dev_template_replaces_image_and_command_and_drops_probes() {
        let spec = DevSpec {
            image: Some("busybox:dev".into()),
            command: Some(Command::Exec(vec!["sleep".into(), "1d".into()])),
            restartable: false,
            owner: "shop/web".into(),
        };
        let t = dev_template(&template(), &spec);
        let c0 = &t["spec"]["containers"][0];
        assert_eq!(c0["image"], "busybox:dev");
        assert_eq!(c0["command"], json!(["sleep", "1d"]));
        assert!(c0.get("args").is_none());
        assert!(c0.get("readinessProbe").is_none() && c0.get("livenessProbe").is_none());
        let c1 = &t["spec"]["containers"][1];
        assert_eq!(c1["image"], "side");
        assert!(c1.get("startupProbe").is_none());
        assert_eq!(t["metadata"]["annotations"][DEV_ANNOTATION], "shop/web");
        assert_eq!(
            t["metadata"]["labels"]["app"], "web",
            "labels stay (selector)"
        );
    }

    #[test]
    fn restartable_commands_run_under_the_supervisor() {
        let spec = DevSpec {
            command: Some(Command::Shell("httpd -f -p 80".into())),
            restartable: true,
            ..DevSpec::default()
        };
        let t = dev_template(&template(), &spec);
        let cmd = t["spec"]["containers"][0]["command"].as_array().unwrap();
        assert_eq!(cmd[0], "sh");
        assert_eq!(cmd[2], SUPERVISOR);
        assert_eq!(
            cmd[4..],
            [json!("sh"), json!("-c"), json!("httpd -f -p 80")]
        );
    }

    #[test]
    fn without_a_command_the_original_one_stays() {
        let t = dev_template(&template(), &DevSpec::default());
        assert_eq!(t["spec"]["containers"][0]["args"], json!(["httpd", "-f"]));
        assert_eq!(t["spec"]["containers"][0]["image"], "busybox");
    }

    #[test]
    fn the_supervisor_restarts_on_hup_and_exits_with_the_command() {
        // Exits with the command's status when it ends by itself.
        let out = std::process::Command::new("sh")
            .args(["-c", SUPERVISOR, "devenv-dev", "sh", "-c", "exit 7"])
            .status()
            .unwrap();
        assert_eq!(out.code(), Some(7));
    }

    /// Dev mode writes its backup to the state store (flushed) before it changes
    /// the workload. A real flush failure is hard to produce under a test, so the
    /// store's save fails here, and a kube client over a recording service answers
    /// the GET: nothing but that GET may reach the API server.
    #[tokio::test]
    async fn a_backup_that_cannot_be_made_durable_leaves_the_workload_untouched() {
        use std::sync::{Arc, Mutex};
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let api = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            log.lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri().path()));
            let deployment = json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "7"},
                "spec": {
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
                    }
                }
            });
            let body = kube::client::Body::from(serde_json::to_vec(&deployment).unwrap());
            async move {
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .header("content-type", "application/json")
                        .body(body)
                        .unwrap(),
                )
            }
        });
        let client = Client::new(api, "ns");
        let w = Workload {
            resource: kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                "apps",
                "v1",
                "Deployment",
            )),
            kind: "Deployment".into(),
            name: "web".into(),
            namespace: "ns".into(),
            pods: "app=web".into(),
        };
        let spec = DevSpec {
            image: Some("nginx:dev".into()),
            command: None,
            restartable: false,
            owner: "shop/web".into(),
        };
        let err = enter(&client, "ctx", &w, &spec, |_| {
            Err("state database /data/state: IO error: No space left on device".into())
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("cannot record the backup of deployment/web")
                && err.contains("No space left on device")
                && err.contains("nothing was changed"),
            "{err}"
        );
        assert_eq!(
            *seen.lock().unwrap(),
            ["GET /apis/apps/v1/namespaces/ns/deployments/web"],
            "only the read reached the API server"
        );
    }
}
