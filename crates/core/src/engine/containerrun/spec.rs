//! What a container service becomes in the engine's API: its create body (image,
//! command, environment with secrets, published forwards, network alias, labels).
//! Pure, so it is tested without an engine.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountTmpfsOptions, MountType,
    NetworkingConfig, PortBinding,
};

use crate::config::preset::vars;
use crate::config::{Command, Environment, Preset, Service, VolumeKind};
use crate::docker::{self, LABEL_CONFIG, LABEL_SERVICE};

/// The container's environment: the service's `env`, then its secrets' keys (which
/// win), then devenv's own variables. The user's shell environment stays out: a
/// container gets what its config says.
pub(super) fn environment(svc: &Service, env: &Environment) -> BTreeMap<String, String> {
    let mut out = svc.env.clone();
    for name in &svc.secrets {
        if let Some(secret) = env.secrets.iter().find(|s| &s.name == name) {
            out.extend(secret.data.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    out.insert("DEVENV_SERVICE".into(), svc.name.clone());
    out.insert("DEVENV_ENVIRONMENT".into(), env.name.clone());
    out
}

/// The container's argv: a string runs through `sh -c`, as for local services; none
/// keeps the image's own command.
pub(super) fn argv(command: &Command) -> Vec<String> {
    match command {
        Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
        Command::Exec(argv) => argv.clone(),
    }
}

/// A preset's command when the service has none, as on Kubernetes: redis with an
/// append-only file, and `--requirepass` when it has `REDIS_PASSWORD` (read by the
/// container's shell, so the value is not in the container's command line); postgres
/// is the image's own entrypoint, which reads `POSTGRES_*`.
fn preset_cmd(svc: &Service, env: &Environment) -> Option<Vec<String>> {
    match svc.preset? {
        Preset::Redis => {
            let pw = environment(svc, env)
                .get(vars::REDIS_PASSWORD)
                .is_some_and(|p| !p.is_empty());
            Some(if pw {
                vec![
                    "sh".into(),
                    "-c".into(),
                    format!(
                        "exec redis-server --appendonly yes --requirepass \"${}\"",
                        vars::REDIS_PASSWORD
                    ),
                ]
            } else {
                ["redis-server", "--appendonly", "yes"]
                    .map(String::from)
                    .to_vec()
            })
        }
        Preset::Postgresql => None,
    }
}

/// The create body of `svc` on `network`, labelled with the environment, the service
/// and a digest of everything else in it.
pub(super) fn create_body(
    svc: &Service,
    env: &Environment,
    env_id: &str,
    network: &str,
) -> ContainerCreateBody {
    let image = svc.image.clone().unwrap_or_default();
    let mut exposed: Vec<u16> = svc.ports.clone();
    exposed.extend(svc.forward.iter().map(|(_, remote)| *remote));
    exposed.sort_unstable();
    exposed.dedup();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for (local, remote) in &svc.forward {
        bindings
            .entry(format!("{remote}/tcp"))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(local.to_string()),
            });
    }
    let vars: Vec<String> = environment(svc, env)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut labels = docker::env_labels(env_id, &env.name);
    labels.insert(LABEL_SERVICE.into(), svc.name.clone());
    let mut body = ContainerCreateBody {
        image: Some(image),
        cmd: svc
            .command
            .as_ref()
            .map(argv)
            .or_else(|| preset_cmd(svc, env)),
        env: Some(vars),
        exposed_ports: Some(exposed.iter().map(|p| format!("{p}/tcp")).collect()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            port_bindings: Some(bindings),
            mounts: Some(mounts(svc, env, env_id)),
            network_mode: Some(network.to_owned()),
            // Reaps zombies and forwards signals for images whose command is a shell.
            init: Some(true),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_owned(),
                EndpointSettings {
                    aliases: Some(vec![svc.name.clone()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    };
    let digest = config_digest(&body);
    if let Some(l) = body.labels.as_mut() {
        l.insert(LABEL_CONFIG.into(), digest);
    }
    body
}

/// The service's mounts: persistent volumes as the environment's named volumes (see
/// [`docker::volume_name`]; created by the runner first), ephemeral ones as anonymous
/// volumes (removed with the container), tmpfs ones in memory, configmap ones as a
/// read-only bind of their source, host ones as a bind of the host path, and bind
/// mounts. (A configmap of one file is bound as that file under the mount path.)
fn mounts(svc: &Service, env: &Environment, env_id: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for m in &svc.volumes {
        let Some(vol) = env.volumes.iter().find(|v| v.name == m.name) else {
            continue;
        };
        let mut mount = Mount {
            target: Some(m.path.clone()),
            ..Default::default()
        };
        match &vol.kind {
            VolumeKind::Tmpfs => {
                mount.typ = Some(MountType::TMPFS);
                mount.tmpfs_options = Some(MountTmpfsOptions {
                    size_bytes: vol.size.as_deref().and_then(quantity_bytes),
                    ..Default::default()
                });
            }
            VolumeKind::Persistent { .. } => {
                mount.typ = Some(MountType::VOLUME);
                mount.source = Some(docker::volume_name(env_id, &env.name, &vol.name));
            }
            VolumeKind::Ephemeral => mount.typ = Some(MountType::VOLUME),
            VolumeKind::Configmap { source, .. } => {
                mount.typ = Some(MountType::BIND);
                mount.read_only = Some(true);
                if source.is_file() {
                    let file = source.file_name().unwrap_or_default().to_string_lossy();
                    mount.target = Some(format!("{}/{file}", m.path.trim_end_matches('/')));
                }
                mount.source = Some(source.display().to_string());
            }
            VolumeKind::Host { path, .. } => {
                mount.typ = Some(MountType::BIND);
                mount.source = Some(path.display().to_string());
            }
        }
        out.push(mount);
    }
    for b in &svc.binds {
        out.push(Mount {
            target: Some(b.path.clone()),
            source: Some(b.host.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(b.read_only),
            ..Default::default()
        });
    }
    out
}

/// Bytes of a Kubernetes quantity (`64Mi`, `1Gi`, `500M`); the config checked its form.
fn quantity_bytes(q: &str) -> Option<i64> {
    let digits = q.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: f64 = digits.parse().ok()?;
    let unit: f64 = match &q[digits.len()..] {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * unit) as i64)
}

/// A digest of the body (maps in a stable order), stored as a label to tell an
/// adoptable container from a stale one. The environment's values are in it so that a
/// changed secret replaces the container; only this digest of them leaves devenv.
fn config_digest(body: &ContainerCreateBody) -> String {
    let json = serde_json::to_value(body).unwrap_or_default();
    // serde_json's map is ordered (BTreeMap), so equal bodies print equally.
    docker::digest(&json.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn env_with(svc: Service) -> Environment {
        Environment {
            name: "shop".into(),
            version: None,
            project_dir: "/p".into(),
            services: vec![svc],
            cluster: None,
            volumes: vec![],
            secrets: vec![Secret {
                name: "db".into(),
                data: BTreeMap::from([("PASSWORD".into(), "s3cret".into())]),
                source: crate::config::SecretSource::Inline,
                revision: String::new(),
            }],
            hooks: Default::default(),
            workspaces: Vec::new(),
        }
    }

    #[test]
    fn quantities_become_bytes() {
        assert_eq!(quantity_bytes("64Mi"), Some(64 << 20));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("512"), Some(512));
    }

    #[test]
    fn forwards_publish_on_loopback_and_secrets_become_variables() {
        let mut svc = Service::test("web");
        svc.runtime = crate::config::RuntimeKind::Container;
        svc.image = Some("busybox:1".into());
        svc.ports = vec![80];
        svc.forward = vec![(18080, 80)];
        svc.secrets = vec!["db".into()];
        svc.command = Some(Command::Shell("httpd -f".into()));
        let env = env_with(svc.clone());
        let body = create_body(&svc, &env, "/p#", "net");
        let b = &body
            .host_config
            .as_ref()
            .unwrap()
            .port_bindings
            .as_ref()
            .unwrap()["80/tcp"];
        let b = &b.as_ref().unwrap()[0];
        assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(b.host_port.as_deref(), Some("18080"));
        assert!(body
            .env
            .as_ref()
            .unwrap()
            .contains(&"PASSWORD=s3cret".to_owned()));
        assert_eq!(body.cmd.as_ref().unwrap()[..2], ["sh", "-c"]);
        let alias = &body
            .networking_config
            .as_ref()
            .unwrap()
            .endpoints_config
            .as_ref()
            .unwrap()["net"];
        assert_eq!(alias.aliases.as_deref(), Some(&["web".to_owned()][..]));
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SERVICE], "web");
        assert!(!labels[LABEL_CONFIG].contains("s3cret"));

        let again = create_body(&svc, &env, "/p#", "net");
        assert_eq!(
            again.labels.as_ref().unwrap()[LABEL_CONFIG],
            labels[LABEL_CONFIG]
        );
        let mut changed = svc.clone();
        changed.env.insert("X".into(), "1".into());
        let other = create_body(&changed, &env, "/p#", "net");
        assert_ne!(
            other.labels.as_ref().unwrap()[LABEL_CONFIG],
            labels[LABEL_CONFIG]
        );
    }

    #[test]
    fn configmap_and_host_volumes_are_bind_mounts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.conf"), "a=1").unwrap();
        let mut svc = Service::test("web");
        svc.runtime = crate::config::RuntimeKind::Container;
        let mut env = env_with(svc.clone());
        let kinds = [
            (
                "conf",
                VolumeKind::Configmap {
                    source: dir.path().join("app.conf"),
                    digest: String::new(),
                },
            ),
            (
                "logs",
                VolumeKind::Host {
                    path: dir.path().to_path_buf(),
                    force: false,
                },
            ),
            ("mem", VolumeKind::Tmpfs),
        ];
        env.volumes = kinds
            .iter()
            .map(|(name, kind)| crate::config::Volume {
                name: (*name).into(),
                kind: kind.clone(),
                size: Some("1Mi".into()),
            })
            .collect();
        svc.volumes = kinds
            .iter()
            .map(|(name, _)| crate::config::VolumeMount {
                name: (*name).into(),
                path: format!("/mnt/{name}"),
                content: None,
            })
            .collect();
        let m = mounts(&svc, &env, "id");
        assert_eq!(m[0].typ, Some(MountType::BIND));
        assert_eq!(m[0].read_only, Some(true));
        assert_eq!(
            m[0].target.as_deref(),
            Some("/mnt/conf/app.conf"),
            "a file under the path"
        );
        assert_eq!(m[1].typ, Some(MountType::BIND));
        assert_eq!(m[1].source.as_deref(), dir.path().to_str());
        assert_eq!(m[2].typ, Some(MountType::TMPFS));
        assert_eq!(
            m[2].tmpfs_options.as_ref().and_then(|o| o.size_bytes),
            Some(1024 * 1024)
        );
    }
}
