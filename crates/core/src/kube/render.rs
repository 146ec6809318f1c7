//! Objects devenv writes for an `image` service or a preset: Deployment, Service,
//! PersistentVolumeClaims and Secrets, as plain JSON ready for server-side apply.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::configmap::{checksum_annotation, ConfigFiles};
use super::{labels, ENV_LABEL, MANAGED_BY, MANAGED_BY_VALUE, SERVICE_LABEL};
use crate::config::preset::{self, vars};
use crate::config::{
    Command, Environment, PortSpec, Preset, Probe, Readiness, Service, VolumeKind,
    DEFAULT_CLAIM_SIZE,
};

/// Annotation on the pod template changed by `devenv restart` (like `kubectl rollout
/// restart`).
pub const RESTARTED_AT: &str = "devenv.dev/restartedAt";

/// Annotation on the pod template: the keyed revision of the secrets the pods use
/// (`Environment::secrets_revision`, never a value), so that `up` after a rotation
/// rolls the pods, which read a Secret only when they start.
pub const SECRETS_REVISION: &str = "devenv.dev/secretsRevision";
/// The pod template's annotation with the revision of its sensitive terraform
/// outputs (a keyed digest): a new value rolls the pods out.
pub const TF_OUTPUTS_REVISION: &str = "devenv.dev/tfOutputsRevision";

/// The Secret holding a service's sensitive terraform outputs (`${tf.S.O}` in its
/// `env`): `<service>-tf-outputs`.
pub fn tf_outputs_secret(service: &str) -> String {
    format!("{service}-tf-outputs")
}

/// What a preset brings on Kubernetes: image, environment, data directory (its port and
/// probe are the config's, `config::preset`). Its environment
/// contract (POSTGRES_*, REDIS_PASSWORD) is the one the local preset honours too
/// (`crate::presets`): the image reads POSTGRES_*; REDIS_PASSWORD becomes
/// `--requirepass` here, as locally.
struct PresetSpec {
    image: &'static str,
    env: &'static [(&'static str, &'static str)],
    data_dir: &'static str,
}

fn preset_spec(p: Preset) -> PresetSpec {
    match p {
        Preset::Postgresql => PresetSpec {
            image: "postgres:16",
            // No default user, password or database: the image's own defaults
            // (postgres, none -> refuse to start, the user's name) are the contract,
            // and the config check insists on a password.
            env: &[("PGDATA", "/var/lib/postgresql/data/pgdata")],
            data_dir: "/var/lib/postgresql/data",
        },
        Preset::Redis => PresetSpec {
            image: "redis:7",
            env: &[],
            data_dir: "/data",
        },
    }
}

/// Where a preset's image keeps its data (the claim `<service>-data` is mounted
/// there unless a volume is).
pub fn preset_data_dir(p: Preset) -> &'static str {
    preset_spec(p).data_dir
}

/// Whether the service sets `name`, in `env` or through one of its secrets.
fn sets_var(env: &Environment, svc: &Service, name: &str) -> bool {
    svc.env.get(name).is_some_and(|v| !v.is_empty())
        || svc.secrets.iter().any(|s| {
            env.secrets
                .iter()
                .any(|d| &d.name == s && d.data.contains_key(name))
        })
}

/// The container arguments of a preset (`args`, so the image's entrypoint, which
/// initialises data directories, still runs).
fn preset_args(env: &Environment, svc: &Service) -> Vec<String> {
    match svc.preset {
        Some(Preset::Redis) => {
            let mut a: Vec<String> = ["redis-server", "--appendonly", "yes"]
                .map(String::from)
                .to_vec();
            if sets_var(env, svc, vars::REDIS_PASSWORD) {
                // Expanded by the kubelet from the container's environment.
                a.extend([
                    "--requirepass".into(),
                    format!("$({})", vars::REDIS_PASSWORD),
                ]);
            }
            a
        }
        _ => Vec::new(),
    }
}

/// `PING` -> `PONG` with the image's redis-cli, authenticating only when the container
/// has a password (an empty one would make redis-cli warn on every probe).
fn redis_ping(port: u16) -> String {
    format!(
        "if [ -n \"${pw}\" ]; then export REDISCLI_AUTH=\"${pw}\"; fi; redis-cli -p {port} ping | grep -q PONG",
        pw = vars::REDIS_PASSWORD
    )
}

/// The image a service runs: its own `image`, else the preset's.
pub fn image_of(svc: &Service) -> Option<String> {
    svc.image
        .clone()
        .or_else(|| svc.preset.map(|p| preset_spec(p).image.to_owned()))
}

/// Ports of the Service object: the configured ones, else the preset's.
pub fn ports_of(svc: &Service) -> Vec<PortSpec> {
    if !svc.port_specs.is_empty() {
        return svc.port_specs.clone();
    }
    svc.preset
        .map(|p| vec![PortSpec::number(preset::default_port(p))])
        .unwrap_or_default()
}

/// The volumes of `env` of type `configmap` that `svc` mounts (their files are read
/// before rendering, [`super::configmap::read`]).
pub fn configmap_sources(env: &Environment, svc: &Service) -> Vec<(String, std::path::PathBuf)> {
    svc.volumes
        .iter()
        .filter_map(|m| env.volumes.iter().find(|v| v.name == m.name))
        .filter_map(|v| match &v.kind {
            VolumeKind::Configmap { source, .. } => Some((v.name.clone(), source.clone())),
            _ => None,
        })
        .collect()
}

/// Objects for a service that runs an image (or a preset), in apply order; `configs`
/// holds the files of the configmap volumes it mounts, by volume name.
pub fn objects(
    env: &Environment,
    svc: &Service,
    image: &str,
    configs: &BTreeMap<String, ConfigFiles>,
) -> Vec<Value> {
    let ns_labels = labels(&env.name, &svc.name);
    let shared_labels = json!({ MANAGED_BY: MANAGED_BY_VALUE, ENV_LABEL: env.name });
    let preset = svc.preset.map(preset_spec);
    let mut out = Vec::new();

    // Secrets the service uses (shared by services of the environment).
    for name in &svc.secrets {
        if let Some(secret) = env.secrets.iter().find(|s| &s.name == name) {
            out.push(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": { "name": secret.name, "labels": shared_labels },
                "type": "Opaque",
                "stringData": secret.data,
            }));
        }
    }

    // Volumes: declared mounts, plus the preset's data volume.
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let mut annotations = serde_json::Map::new();
    for m in &svc.volumes {
        let Some(vol) = env.volumes.iter().find(|v| v.name == m.name) else {
            continue;
        };
        let source = match &vol.kind {
            VolumeKind::Persistent {
                storage_class,
                access_mode,
            } => {
                let size = vol.size.as_deref().unwrap_or(DEFAULT_CLAIM_SIZE);
                let mut claim = pvc(&vol.name, size, &shared_labels);
                claim["spec"]["accessModes"] = json!([access_mode]);
                if let Some(class) = storage_class {
                    claim["spec"]["storageClassName"] = json!(class);
                }
                out.push(claim);
                json!({ "persistentVolumeClaim": { "claimName": vol.name } })
            }
            VolumeKind::Ephemeral => match &vol.size {
                Some(size) => json!({ "emptyDir": { "sizeLimit": size } }),
                None => json!({ "emptyDir": {} }),
            },
            VolumeKind::Tmpfs => match &vol.size {
                Some(size) => json!({ "emptyDir": { "medium": "Memory", "sizeLimit": size } }),
                None => json!({ "emptyDir": { "medium": "Memory" } }),
            },
            VolumeKind::Configmap { .. } => {
                let files = configs.get(&vol.name).cloned().unwrap_or_default();
                out.push(json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": { "name": vol.name, "labels": shared_labels },
                    "data": files.data,
                }));
                // The kubelet updates a mounted ConfigMap late (up to a minute) and
                // never for a subPath; a new digest rolls the pods out at once.
                annotations.insert(checksum_annotation(&vol.name), json!(files.digest));
                json!({ "configMap": { "name": vol.name } })
            }
            VolumeKind::Host { path, .. } => {
                json!({ "hostPath": { "path": path.display().to_string() } })
            }
        };
        let mut volume = source;
        volume["name"] = json!(vol.name);
        volumes.push(volume);
        mounts.push(json!({ "name": vol.name, "mountPath": m.path }));
    }
    if let Some(p) = &preset {
        if !mounts.iter().any(|m| m["mountPath"] == p.data_dir) {
            let claim = format!("{}-data", svc.name);
            out.push(pvc(&claim, "1Gi", &json!(ns_labels)));
            volumes
                .push(json!({ "name": "data", "persistentVolumeClaim": { "claimName": claim } }));
            mounts.push(json!({ "name": "data", "mountPath": p.data_dir }));
        }
    }

    let ports = ports_of(svc);
    let mut env_vars: BTreeMap<String, String> = preset
        .as_ref()
        .map(|p| {
            p.env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
        .unwrap_or_default();
    env_vars.extend(svc.env.clone());
    // Sensitive terraform outputs reach the pod from a Secret, never the Deployment.
    let sensitive: BTreeMap<String, String> = svc
        .sensitive_env
        .iter()
        .filter_map(|k| Some((k.clone(), env_vars.remove(k)?)))
        .collect();
    let tf_secret = tf_outputs_secret(&svc.name);
    if !sensitive.is_empty() {
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": tf_secret, "labels": ns_labels },
            "type": "Opaque",
            "stringData": sensitive,
        }));
        annotations.insert(
            TF_OUTPUTS_REVISION.into(),
            Value::String(svc.sensitive_revision.clone()),
        );
    }
    let mut env_list: Vec<Value> = env_vars
        .iter()
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    env_list.extend(sensitive.keys().map(
        |k| json!({ "name": k, "valueFrom": { "secretKeyRef": { "name": tf_secret, "key": k } } }),
    ));
    let mut container = json!({
        "name": svc.name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": env_list,
        "ports": ports.iter().map(container_port).collect::<Vec<_>>(),
        "volumeMounts": mounts,
    });
    match &svc.command {
        Some(Command::Shell(s)) => container["command"] = json!(["sh", "-c", s]),
        Some(Command::Exec(argv)) => container["command"] = json!(argv),
        // `args`, not `command`: the image's entrypoint (which initialises data
        // directories in the official images) still runs.
        None => {
            let args = preset_args(env, svc);
            if !args.is_empty() {
                container["args"] = json!(args);
            }
        }
    }
    if !svc.secrets.is_empty() {
        container["envFrom"] = json!(svc
            .secrets
            .iter()
            .map(|s| json!({ "secretRef": { "name": s } }))
            .collect::<Vec<_>>());
    }
    if let Some(r) = &svc.resources {
        container["resources"] = json!({ "requests": r.requests, "limits": r.limits });
    }
    // A preset's probe was filled in when the config was checked (`config::preset`).
    if let Some(p) = svc.readiness.as_ref().and_then(readiness_probe) {
        container["readinessProbe"] = p;
    }

    let has_claims = volumes
        .iter()
        .any(|v| v.get("persistentVolumeClaim").is_some());
    let selector = json!({ ENV_LABEL: env.name, SERVICE_LABEL: svc.name });
    let mut template_meta = json!({ "labels": ns_labels });
    if !svc.secrets.is_empty() {
        annotations.insert(
            SECRETS_REVISION.into(),
            Value::String(env.secrets_revision(svc)),
        );
    }
    if !annotations.is_empty() {
        template_meta["annotations"] = Value::Object(annotations);
    }
    out.push(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": svc.name, "labels": ns_labels },
        "spec": {
            "replicas": svc.replicas,
            "selector": { "matchLabels": selector },
            // A volume claimed ReadWriteOnce can't be mounted by old and new pods at once.
            "strategy": if has_claims { json!({ "type": "Recreate" }) } else { json!({ "type": "RollingUpdate" }) },
            "template": {
                "metadata": template_meta,
                "spec": {
                    "containers": [container],
                    "volumes": volumes,
                    "terminationGracePeriodSeconds": 10,
                    "enableServiceLinks": false,
                }
            }
        }
    }));
    if !ports.is_empty() {
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": svc.name, "labels": ns_labels },
            "spec": {
                "selector": selector,
                "ports": ports.iter().map(service_port).collect::<Vec<_>>(),
            }
        }));
    }
    out
}

/// A port of the container: the target port, under the port's name when it has one
/// (so a chart or probe can name it too).
fn container_port(p: &PortSpec) -> Value {
    let mut v = json!({ "containerPort": p.target_port, "protocol": p.protocol.as_str() });
    if let Some(name) = &p.name {
        v["name"] = json!(name);
    }
    v
}

/// A port of the Service object; unnamed ports are named `p<port>` (a Service with
/// several ports needs names), with the protocol when it is not TCP.
fn service_port(p: &PortSpec) -> Value {
    let name = p.name.clone().unwrap_or_else(|| match p.protocol {
        crate::config::Protocol::Tcp => format!("p{}", p.port),
        other => format!("p{}-{}", p.port, other.as_str().to_ascii_lowercase()),
    });
    json!({ "name": name, "port": p.port, "targetPort": p.target_port, "protocol": p.protocol.as_str() })
}

fn pvc(name: &str, size: &str, labels: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": size } },
        }
    })
}

/// The container readiness probe for a configured `readiness` (log probes have no
/// kubernetes equivalent: the rollout alone gates those).
fn readiness_probe(r: &Readiness) -> Option<Value> {
    let mut p = match &r.probe {
        Probe::Http { port, path, .. } => json!({ "httpGet": { "path": path, "port": port } }),
        Probe::Tcp { port, .. } => json!({ "tcpSocket": { "port": port } }),
        Probe::Exec { command } => json!({ "exec": { "command": match command {
            Command::Shell(s) => vec!["sh".to_owned(), "-c".to_owned(), s.clone()],
            Command::Exec(v) => v.clone(),
        } } }),
        Probe::Log { .. } => return None,
        // The preset's probes, through the image's own clients; one check may take 5 s.
        Probe::Postgres {
            port,
            user,
            database,
            ..
        } => json!({ "exec": { "command": [
            "pg_isready", "-h", "127.0.0.1", "-p", port.to_string(), "-U", user, "-d", database
        ] }, "timeoutSeconds": 5 }),
        Probe::Redis { port, .. } => json!({ "exec": { "command": [
            "sh", "-c", redis_ping(*port)
        ] }, "timeoutSeconds": 5 }),
    };
    p["initialDelaySeconds"] = json!(r.initial_delay.as_secs());
    p["periodSeconds"] = json!(r.period.as_secs().max(1));
    p["failureThreshold"] = json!(r.failure_threshold.max(1));
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, Volume, VolumeMount};

    fn env_with(svc: Service) -> Environment {
        Environment {
            name: "shop".into(),
            version: None,
            project_dir: "/p".into(),
            services: vec![svc],
            cluster: None,
            volumes: vec![Volume {
                name: "db-data".into(),
                kind: VolumeKind::Persistent {
                    storage_class: None,
                    access_mode: "ReadWriteOnce".into(),
                },
                size: Some("2Gi".into()),
            }],
            secrets: vec![Secret {
                name: "creds".into(),
                data: BTreeMap::from([("PASSWORD".into(), "s3cret".into())]),
                source: crate::config::SecretSource::Inline,
                revision: String::new(),
            }],
            hooks: Default::default(),
            workspaces: Vec::new(),
        }
    }

    #[test]
    fn image_service_gets_deployment_service_secret_and_claim() {
        let mut svc = Service::test("web");
        svc.image = Some("nginx:1.27".into());
        svc.ports = vec![80];
        svc.port_specs = vec![PortSpec::number(80)];
        svc.replicas = 2;
        svc.command = Some(Command::Shell("nginx -g 'daemon off;'".into()));
        svc.secrets = vec!["creds".into()];
        svc.volumes = vec![VolumeMount {
            name: "db-data".into(),
            path: "/data".into(),
            content: None,
        }];
        let env = env_with(svc.clone());
        let objs = objects(&env, &svc, "nginx:1.27", &BTreeMap::new());
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["Secret", "PersistentVolumeClaim", "Deployment", "Service"]
        );
        let dep = &objs[2];
        assert_eq!(dep["spec"]["replicas"], 2);
        assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
        assert_eq!(dep["metadata"]["labels"][MANAGED_BY], "devenv");
        assert_eq!(
            dep["spec"]["template"]["metadata"]["labels"][SERVICE_LABEL],
            "web"
        );
        let c = &dep["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["command"][0], "sh");
        assert_eq!(c["envFrom"][0]["secretRef"]["name"], "creds");
        assert_eq!(objs[1]["spec"]["resources"]["requests"]["storage"], "2Gi");
        assert_eq!(objs[3]["spec"]["ports"][0]["port"], 80);
    }

    #[test]
    fn presets_bring_image_probe_and_data_claim() {
        let mut svc = Service::test("cache");
        svc.preset = Some(Preset::Redis);
        preset::apply(&mut svc);
        let env = env_with(svc.clone());
        let image = image_of(&svc).unwrap();
        assert_eq!(image, "redis:7");
        let objs = objects(&env, &svc, &image, &BTreeMap::new());
        assert_eq!(objs[0]["kind"], "PersistentVolumeClaim");
        assert_eq!(objs[0]["metadata"]["name"], "cache-data");
        let c = &objs[1]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["readinessProbe"]["exec"]["command"][0], "sh");
        assert!(
            c["args"].as_array().unwrap().len() == 3,
            "no password, no --requirepass"
        );
        assert_eq!(c["volumeMounts"][0]["mountPath"], "/data");
        assert_eq!(objs[2]["spec"]["ports"][0]["port"], 6379);

        svc.image = Some("devenv.test/redis:7".into());
        assert_eq!(image_of(&svc).unwrap(), "devenv.test/redis:7");
    }

    #[test]
    fn preset_contract_is_the_local_one() {
        let mut cache = Service::test("cache");
        cache.preset = Some(Preset::Redis);
        cache.env.insert("REDIS_PASSWORD".into(), "pw".into());
        let objs = objects(
            &env_with(cache.clone()),
            &cache,
            "redis:7",
            &BTreeMap::new(),
        );
        let c = &objs[1]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["args"][3], "--requirepass");
        assert_eq!(c["args"][4], "$(REDIS_PASSWORD)", "expanded by the kubelet");

        let mut db = Service::test("db");
        db.preset = Some(Preset::Postgresql);
        db.env.insert("POSTGRES_USER".into(), "app".into());
        db.env.insert("POSTGRES_PASSWORD".into(), "pw".into());
        preset::apply(&mut db);
        let objs = objects(&env_with(db.clone()), &db, "postgres:16", &BTreeMap::new());
        let c = &objs[1]["spec"]["template"]["spec"]["containers"][0];
        let env: Vec<&str> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(env, ["PGDATA", "POSTGRES_PASSWORD", "POSTGRES_USER"]);
        let probe = &c["readinessProbe"]["exec"]["command"];
        assert_eq!(probe[6], "app");
        assert_eq!(
            probe[8], "app",
            "the database defaults to the user's name, as in the image"
        );
    }

    #[test]
    fn sensitive_terraform_outputs_reach_the_pod_from_a_secret_not_the_deployment() {
        let mut api = Service::test("api");
        api.env.insert("TOKEN".into(), "tf-s3cret".into());
        api.env.insert("URL".into(), "http://x".into());
        api.sensitive_env.insert("TOKEN".into());
        api.sensitive_revision = "rev1".into();
        let objs = objects(&env_with(api.clone()), &api, "busybox", &BTreeMap::new());
        let secret = objs
            .iter()
            .find(|o| o["kind"] == "Secret")
            .expect("a Secret for the sensitive output");
        assert_eq!(secret["metadata"]["name"], "api-tf-outputs");
        assert_eq!(secret["stringData"]["TOKEN"], "tf-s3cret");
        let deployment = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert!(
            !deployment.to_string().contains("tf-s3cret"),
            "the value is in the Deployment: {deployment}"
        );
        let c = &deployment["spec"]["template"]["spec"]["containers"][0];
        let env = c["env"].as_array().unwrap();
        let token = env.iter().find(|e| e["name"] == "TOKEN").unwrap();
        assert_eq!(token["valueFrom"]["secretKeyRef"]["name"], "api-tf-outputs");
        assert_eq!(token["valueFrom"]["secretKeyRef"]["key"], "TOKEN");
        let url = env.iter().find(|e| e["name"] == "URL").unwrap();
        assert_eq!(url["value"], "http://x", "other values stay plain");
        assert_eq!(
            deployment["spec"]["template"]["metadata"]["annotations"][TF_OUTPUTS_REVISION], "rev1",
            "a new value rolls the pods out"
        );
    }

    #[test]
    fn every_volume_kind_and_named_ports_render() {
        let mut svc = Service::test("box");
        svc.image = Some("busybox".into());
        svc.ports = vec![80];
        svc.port_specs = vec![PortSpec {
            name: Some("http".into()),
            port: 80,
            target_port: 8080,
            protocol: crate::config::Protocol::Tcp,
        }];
        let kinds = [
            (
                "data",
                VolumeKind::Persistent {
                    storage_class: Some("local-path".into()),
                    access_mode: "ReadWriteMany".into(),
                },
                None,
            ),
            ("scratch", VolumeKind::Ephemeral, Some("10Mi")),
            ("cache", VolumeKind::Tmpfs, Some("64Mi")),
            (
                "conf",
                VolumeKind::Configmap {
                    source: "/p/config".into(),
                    digest: "abc".into(),
                },
                None,
            ),
            (
                "logs",
                VolumeKind::Host {
                    path: "/var/log".into(),
                    force: false,
                },
                None,
            ),
        ];
        let mut env = env_with(svc.clone());
        env.volumes = kinds
            .iter()
            .map(|(name, kind, size)| Volume {
                name: (*name).into(),
                kind: kind.clone(),
                size: size.map(String::from),
            })
            .collect();
        svc.volumes = kinds
            .iter()
            .map(|(name, _, _)| VolumeMount {
                name: (*name).into(),
                path: format!("/mnt/{name}"),
                content: None,
            })
            .collect();
        let configs = BTreeMap::from([(
            "conf".to_owned(),
            ConfigFiles {
                data: BTreeMap::from([("app.conf".into(), "a=1".into())]),
                digest: "abc".into(),
            },
        )]);
        let objs = objects(&env, &svc, "busybox", &configs);
        let find = |kind: &str| objs.iter().find(|o| o["kind"] == kind).unwrap();
        let claim = find("PersistentVolumeClaim");
        assert_eq!(claim["spec"]["storageClassName"], "local-path");
        assert_eq!(claim["spec"]["accessModes"][0], "ReadWriteMany");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
        let cm = find("ConfigMap");
        assert_eq!(cm["metadata"]["name"], "conf");
        assert_eq!(cm["data"]["app.conf"], "a=1");
        let template = &find("Deployment")["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"]["devenv.dev/configmap-conf"],
            "abc"
        );
        let vols = template["spec"]["volumes"].as_array().unwrap();
        let vol = |n: &str| vols.iter().find(|v| v["name"] == n).unwrap();
        assert_eq!(vol("data")["persistentVolumeClaim"]["claimName"], "data");
        assert_eq!(vol("scratch")["emptyDir"]["sizeLimit"], "10Mi");
        assert_eq!(vol("cache")["emptyDir"]["medium"], "Memory");
        assert_eq!(vol("cache")["emptyDir"]["sizeLimit"], "64Mi");
        assert_eq!(vol("conf")["configMap"]["name"], "conf");
        assert_eq!(vol("logs")["hostPath"]["path"], "/var/log");
        let c = &template["spec"]["containers"][0];
        assert_eq!(c["volumeMounts"].as_array().unwrap().len(), 5);
        assert_eq!(c["ports"][0]["containerPort"], 8080);
        assert_eq!(c["ports"][0]["name"], "http");
        let service = find("Service");
        assert_eq!(service["spec"]["ports"][0]["name"], "http");
        assert_eq!(service["spec"]["ports"][0]["port"], 80);
        assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);
    }
}
