//! A `configmap` volume on Kubernetes: its files (read by [`crate::config::configmap`])
//! become a ConfigMap, and the pod template carries their digest in an annotation, so
//! a changed file rolls the workload out on the next `up` (the kubelet would update a
//! mounted ConfigMap late, up to a minute, and a process reads its config at start).

pub use crate::config::configmap::{read, ConfigFiles, ConfigFilesError, MAX_BYTES};

/// Annotation on the pod template, per configmap volume: the digest of its files.
pub fn checksum_annotation(volume: &str) -> String {
    format!("devenv.dev/configmap-{volume}")
}
