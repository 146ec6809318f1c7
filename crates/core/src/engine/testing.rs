//! Test helpers for the engine's pure parts: a checked config from YAML.

use crate::config::{self, Environment, LoadRequest};

/// The environment of a config whose `spec.services` is `services` (YAML list items,
/// indented by four), loaded and checked like `devenv up` would.
pub(crate) fn env(services: &str) -> Environment {
    load("", services)
}

/// Like [`env`], with a `spec.cluster`: `image:` services run on Kubernetes.
pub(crate) fn env_with_cluster(services: &str) -> Environment {
    load("  cluster: { provider: kubeconfig }\n", services)
}

fn load(cluster: &str, services: &str) -> Environment {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(".devenv/config.yml");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("create dir");
    let yaml = format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: t\nspec:\n{cluster}  services:\n{services}"
    );
    std::fs::write(&file, yaml).expect("write config");
    match config::load(&LoadRequest {
        start_dir: dir.path().to_path_buf(),
        ..LoadRequest::default()
    }) {
        Ok(l) => l.environment,
        Err(e) => panic!("test config does not load:\n{e}"),
    }
}
