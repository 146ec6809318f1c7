//! One `spec.volumes` entry: its type and the keys each type takes. A key that means
//! nothing for the type is an error (it would parse and do nothing).

use super::check::{is_quantity, Checker};
use super::model::{Volume, VolumeKind};
use super::raw::{RawVolume, RawVolumeKind};

/// The access modes a PersistentVolumeClaim takes.
const ACCESS_MODES: [&str; 4] = [
    "ReadWriteOnce",
    "ReadWriteMany",
    "ReadOnlyMany",
    "ReadWriteOncePod",
];

/// Checks one volume (its name already checked); `None` when it has errors (recorded).
pub(crate) fn check(
    c: &mut Checker<'_>,
    path: &str,
    name: String,
    raw: RawVolume,
) -> Option<Volume> {
    let errors_before = c.errors.len();
    let kind = raw.kind.unwrap_or(RawVolumeKind::Persistent);
    let type_name = match kind {
        RawVolumeKind::Persistent => "persistent",
        RawVolumeKind::Ephemeral => "ephemeral",
        RawVolumeKind::Tmpfs => "tmpfs",
        RawVolumeKind::Configmap => "configmap",
        RawVolumeKind::Host => "host",
    };
    let refuse = |c: &mut Checker<'_>, key: &str, set: bool, why: &str| {
        if set {
            c.error(
                &format!("{path}.{key}"),
                format!("`{key}` does not apply to volume `{name}` of type `{type_name}`"),
                Some(why.into()),
            );
        }
    };
    let persistent = matches!(kind, RawVolumeKind::Persistent);
    let with_source = matches!(kind, RawVolumeKind::Configmap | RawVolumeKind::Host);
    refuse(
        c,
        "storageClass",
        raw.storage_class.is_some() && !persistent,
        "`storageClass` and `accessMode` are settings of a persistent volume's claim",
    );
    refuse(
        c,
        "accessMode",
        raw.access_mode.is_some() && !persistent,
        "`storageClass` and `accessMode` are settings of a persistent volume's claim",
    );
    refuse(
        c,
        "source",
        raw.source.is_some() && !with_source,
        "`source` is the file or directory of a `configmap` volume, or the directory of a `host` one",
    );
    refuse(
        c,
        "force",
        raw.force.is_some() && !matches!(kind, RawVolumeKind::Host),
        "`force` lets a `host` volume be mounted on a cluster of several nodes",
    );
    refuse(
        c,
        "size",
        raw.size.is_some() && with_source,
        "the size of a `configmap` or `host` volume is that of its files",
    );
    if let Some(size) = &raw.size {
        if !is_quantity(size) {
            c.error(
                &format!("{path}.size"),
                format!("`{size}` is not a size"),
                Some("use a Kubernetes quantity such as `512Mi` or `1Gi`".into()),
            );
        }
    }
    if let Some(class) = &raw.storage_class {
        let subdomain =
            class.len() <= 253 && !class.is_empty() && class.split('.').all(super::names::is_label);
        if !subdomain {
            c.error(
                &format!("{path}.storageClass"),
                format!("`{class}` is not a storage class name"),
                Some("e.g. `local-path` (`kubectl get storageclass` lists the cluster's)".into()),
            );
        }
    }
    if let Some(mode) = &raw.access_mode {
        if !ACCESS_MODES.contains(&mode.as_str()) {
            let hint = match super::suggest::closest(mode, ACCESS_MODES) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("one of {}", ACCESS_MODES.join(", ")),
            };
            c.error(
                &format!("{path}.accessMode"),
                format!("`{mode}` is not an access mode"),
                Some(hint),
            );
        }
    }
    let source = if with_source {
        match &raw.source {
            None => {
                c.error(
                    path,
                    format!("volume `{name}` of type `{type_name}` has no `source`"),
                    Some(match kind {
                        RawVolumeKind::Host => "add `source: /path/on/the/host`".into(),
                        _ => {
                            "add `source: ./config/` (a file or a directory of the project)".into()
                        }
                    }),
                );
                None
            }
            Some(s) => {
                let resolved = c.resolve(s);
                if !resolved.exists() {
                    c.error(
                        &format!("{path}.source"),
                        format!(
                            "volume source `{s}` does not exist ({}); relative paths start at the project directory",
                            resolved.display()
                        ),
                        Some("create it or correct the path".into()),
                    );
                }
                Some(resolved)
            }
        }
    } else {
        None
    };
    let digest = match (&kind, &source) {
        (RawVolumeKind::Configmap, Some(src)) if src.exists() => {
            match super::configmap::read(src) {
                Ok(files) => files.digest,
                Err(e) => {
                    c.error(
                        &format!("{path}.source"),
                        e.to_string(),
                        Some("a configmap volume holds text files of at most 1 MiB in all, named with letters, digits, `-`, `_` and `.`".into()),
                    );
                    String::new()
                }
            }
        }
        _ => String::new(),
    };
    if c.errors.len() > errors_before {
        return None;
    }
    let kind = match kind {
        RawVolumeKind::Persistent => VolumeKind::Persistent {
            storage_class: raw.storage_class,
            access_mode: raw.access_mode.unwrap_or_else(|| ACCESS_MODES[0].into()),
        },
        RawVolumeKind::Ephemeral => VolumeKind::Ephemeral,
        RawVolumeKind::Tmpfs => VolumeKind::Tmpfs,
        RawVolumeKind::Configmap => VolumeKind::Configmap {
            source: source?,
            digest,
        },
        RawVolumeKind::Host => VolumeKind::Host {
            path: source?,
            force: raw.force.unwrap_or(false),
        },
    };
    Some(Volume {
        name,
        kind,
        size: raw.size,
    })
}
