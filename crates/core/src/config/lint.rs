//! Warnings: configs that load and may well work, but probably don't do what was meant.
//! `devenv validate` shows them; nothing is refused because of one.

use super::index::Index;
use super::model::{Environment, Probe};
use super::ConfigError;

pub(crate) fn warnings(env: &Environment, index: &Index) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (i, svc) in env.services.iter().enumerate() {
        let Some(readiness) = &svc.readiness else {
            continue;
        };
        let (kind, port) = match &readiness.probe {
            Probe::Http { port, .. } => ("http", *port),
            Probe::Tcp { port, .. } => ("tcp", *port),
            // Preset probes are devenv's own, on the preset's port.
            Probe::Exec { .. }
            | Probe::Log { .. }
            | Probe::Postgres { .. }
            | Probe::Redis { .. } => continue,
        };
        if svc.ports.is_empty() || svc.ports.contains(&port) {
            continue;
        }
        let base = format!("spec.services[{i}].readiness");
        let path = [format!("{base}.{kind}.port"), format!("{base}.port")]
            .into_iter()
            .find(|p| index.has(p))
            .unwrap_or(base);
        let listed = svc
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        out.push(index.error(
            &path,
            format!(
                "service `{}` is probed on port {port}, which is not among its ports ({listed})",
                svc.name
            ),
            Some(format!(
                "if it listens on {port}, add it to `ports`; otherwise probe one of {listed}"
            )),
        ));
    }
    out
}
