//! `snapshot: live` on a service: `devenv snapshot save` copies its data while it
//! runs instead of stopping it (the default, `snapshot: stop`). Only where it means
//! something: a service whose data a snapshot copies by stopping it (a persistent
//! volume it mounts, locally or on the cluster; a preset on the cluster; a local
//! PostgreSQL preset). Elsewhere it is an error, not a key that does nothing.

use serde::Deserialize;

use super::check::Checker;
use super::{Preset, RuntimeKind, Service, Volume, VolumeKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawSnapshot {
    /// Copied while it runs: the service keeps its files consistent on disk.
    Live,
    /// Stopped for the copy (the default).
    Stop,
}

/// Refuses `snapshot: live` where a snapshot does not stop the service anyway.
pub(crate) fn check(c: &mut Checker<'_>, services: &[(usize, Service)], volumes: &[Volume]) {
    for (i, svc) in services {
        if !svc.snapshot_live {
            continue;
        }
        let persistent = svc.volumes.iter().any(|m| {
            volumes
                .iter()
                .any(|v| v.name == m.name && matches!(v.kind, VolumeKind::Persistent { .. }))
        });
        let why_not = match svc.runtime {
            RuntimeKind::Terraform | RuntimeKind::Plugin => {
                Some("a snapshot does not copy its data (terraform's state is its backend's, a plugin keeps its own)")
            }
            RuntimeKind::Container if persistent && svc.preset.is_none() => None,
            RuntimeKind::Container => Some("a snapshot copies only the persistent volumes of container services (a preset's data in a container engine is not supported yet)"),
            RuntimeKind::Local if svc.preset == Some(Preset::Redis) && !persistent => {
                Some("a running redis preset is saved with BGSAVE while it runs already")
            }
            RuntimeKind::Local | RuntimeKind::Kubernetes
                if persistent || svc.preset.is_some() && svc.command.is_none() =>
            {
                None
            }
            _ => Some("it has no data a snapshot copies (no persistent volume, no preset)"),
        };
        if let Some(why) = why_not {
            c.error(
                &format!("spec.services[{i}].snapshot"),
                format!(
                    "`snapshot: live` means nothing for service `{}`: {why}",
                    svc.name
                ),
                Some("remove `snapshot: live`".into()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::{load, ConfigErrors, LoadRequest};

    fn check(spec: &str) -> Result<Vec<(String, bool)>, Vec<String>> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".devenv")).expect("mkdir");
        std::fs::write(
            dir.path().join(".devenv/config.yml"),
            format!(
                "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\nspec:\n{spec}"
            ),
        )
        .expect("write");
        match load(&LoadRequest {
            start_dir: dir.path().to_path_buf(),
            vars: BTreeMap::new(),
            ..LoadRequest::default()
        }) {
            Ok(l) => Ok(l
                .environment
                .services
                .iter()
                .map(|s| (s.name.clone(), s.snapshot_live))
                .collect()),
            Err(ConfigErrors(e)) => Err(e
                .iter()
                .map(|e| format!("{}: {}", e.key, e.message))
                .collect()),
        }
    }

    #[test]
    fn live_is_taken_where_a_snapshot_would_stop_the_service_and_refused_elsewhere() {
        let ok = check(
            "  cluster: { provider: kubeconfig }\n  volumes: [{ name: data, type: persistent }]\n  services:\n    - { name: a, command: sleep 1, volumes: [\"data:/d\"], snapshot: live }\n    - { name: b, image: busybox, volumes: [\"data:/d\"], snapshot: stop }\n    - { name: c, image: busybox, type: redis, snapshot: live }\n",
        );
        assert_eq!(
            ok.unwrap(),
            vec![("a".into(), true), ("b".into(), false), ("c".into(), true)]
        );
        let err = check(
            "  services:\n    - { name: a, command: sleep 1, snapshot: live }\n    - { name: r, type: redis, snapshot: live }\n",
        )
        .unwrap_err();
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(err[0].starts_with("spec.services[0].snapshot: `snapshot: live` means nothing for service `a`: it has no data"), "{err:?}");
        assert!(err[1].contains("BGSAVE"), "{err:?}");
        let err = check("  services:\n    - { name: a, command: sleep 1, snapshot: sometimes }\n")
            .unwrap_err();
        assert!(err[0].contains("snapshot"), "{err:?}");
    }

    #[test]
    fn live_is_taken_for_a_container_service_with_a_persistent_volume_only() {
        let ok = check(
            "  volumes: [{ name: data, type: persistent }]\n  services:\n    - { name: c, image: busybox, volumes: [\"data:/d\"], snapshot: live }\n",
        );
        assert_eq!(ok.unwrap(), vec![("c".into(), true)]);
        let err =
            check("  services:\n    - { name: c, image: busybox, snapshot: live }\n").unwrap_err();
        assert!(
            err[0].contains("persistent volumes of container services"),
            "{err:?}"
        );
    }
}
