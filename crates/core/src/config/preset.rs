//! What a preset (`type: postgresql|redis`) brings to the checked config: its port and
//! its readiness probe, filled in when the config is checked so that `status`,
//! `config show`, `validate` and the engine all see the same service. The environment
//! contract (`POSTGRES_*`, `REDIS_PASSWORD`) is the official images'; the local runner
//! (`crate::presets`) and the Kubernetes renderer (`crate::kube::render`) honour it.
//!
//! What depends on the machine (the binaries on the client's PATH, the data dir) is
//! decided when a local preset starts (`crate::presets::prepare`), not here.

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::{Environment, Preset, Probe, Readiness, RuntimeKind, Service};
use super::yaml::{Entry, Node, Value};
use super::{Origin, DEFAULT_START_DEADLINE};

/// The environment variables of a preset, with the images' defaults: what a config
/// check, the local runner and the Kubernetes renderer agree on.
pub mod vars {
    pub const POSTGRES_USER: &str = "POSTGRES_USER";
    pub const POSTGRES_PASSWORD: &str = "POSTGRES_PASSWORD";
    pub const POSTGRES_DB: &str = "POSTGRES_DB";
    pub const POSTGRES_INITDB_ARGS: &str = "POSTGRES_INITDB_ARGS";
    pub const POSTGRES_HOST_AUTH_METHOD: &str = "POSTGRES_HOST_AUTH_METHOD";
    pub const REDIS_PASSWORD: &str = "REDIS_PASSWORD";
}

/// Whether a postgresql preset with this environment may start: it has a password, or
/// says that connections need none (the official image's rule).
pub fn postgres_has_auth(env: &BTreeMap<String, String>) -> bool {
    env.get(vars::POSTGRES_PASSWORD)
        .is_some_and(|p| !p.is_empty())
        || env
            .get(vars::POSTGRES_HOST_AUTH_METHOD)
            .is_some_and(|m| m == "trust")
}

/// The port a preset listens on unless the service lists its own.
pub fn default_port(preset: Preset) -> u16 {
    match preset {
        Preset::Postgresql => 5432,
        Preset::Redis => 6379,
    }
}

/// How long a local preset may take to accept connections (a first start runs initdb).
const LOCAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the preset's port and probe apply: a preset that runs the preset's server.
/// A local preset with its own `command` runs that instead, and is configured like any
/// other service; on Kubernetes and in a container the preset's image runs either way.
fn runs_preset(svc: &Service) -> bool {
    svc.preset.is_some() && (svc.command.is_none() || svc.runtime != RuntimeKind::Local)
}

/// The probe of a preset's server on `port`, with the images' defaults for the user
/// and database (`postgres`, a database named like the user).
fn probe(preset: Preset, env: &BTreeMap<String, String>, port: u16) -> Probe {
    let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    match preset {
        Preset::Postgresql => {
            let user = var(vars::POSTGRES_USER).unwrap_or_else(|| "postgres".into());
            Probe::Postgres {
                host: "127.0.0.1".into(),
                port,
                database: var(vars::POSTGRES_DB).unwrap_or_else(|| user.clone()),
                user,
            }
        }
        Preset::Redis => Probe::Redis {
            host: "127.0.0.1".into(),
            port,
            password: var(vars::REDIS_PASSWORD),
        },
    }
}

/// Fills in a preset's port (when the service lists none) and readiness probe (when it
/// sets none). The probe's timeout is 60 s locally; on Kubernetes it is the default
/// start deadline, as for any workload (the image may have to be pulled first).
/// Returns whether anything was filled in. Called after `envFile`s are read, so the
/// probe's user, database and password are the ones the server gets.
pub fn apply(svc: &mut Service) -> Filled {
    let mut filled = Filled::default();
    let Some(preset) = svc.preset.filter(|_| runs_preset(svc)) else {
        return filled;
    };
    if svc.ports.is_empty() {
        svc.ports = vec![default_port(preset)];
        svc.port_specs = vec![super::model::PortSpec::number(default_port(preset))];
        filled.port = true;
    }
    // Installed from a chart, the preset is the chart's workloads: their rollout and
    // Ready pods (the chart's own probes) gate it, as for any chart service.
    if svc.readiness.is_none() && svc.chart.is_none() {
        let timeout = match svc.runtime {
            RuntimeKind::Local => LOCAL_TIMEOUT,
            RuntimeKind::Kubernetes
            | RuntimeKind::Container
            | RuntimeKind::Terraform
            | RuntimeKind::Plugin => DEFAULT_START_DEADLINE,
        };
        svc.readiness = Some(Readiness {
            probe: probe(preset, &svc.env, svc.ports[0]),
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout,
            failure_threshold: 3,
        });
        filled.readiness = true;
    }
    filled
}

/// What [`apply`] filled in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Filled {
    pub port: bool,
    pub readiness: bool,
}

/// Applies every preset's defaults and writes them into the merged tree that `config
/// show` prints, marked as built-in defaults (`--origin` says `default`). The probe is
/// shown under its own kind (`postgres`, `redis`), which only a preset sets; the redis
/// password is never shown.
pub(crate) fn apply_all(env: &mut Environment, tree: &mut Node) {
    for svc in &mut env.services {
        let filled = apply(svc);
        if filled == Filled::default() {
            continue;
        }
        let Some(node) = service_node(tree, &svc.name) else {
            continue;
        };
        if filled.port {
            let ports = svc.ports.iter().map(|p| int(i64::from(*p))).collect();
            insert(node, "ports", Node::new(Value::Seq(ports), Origin::Default));
        }
        if let (true, Some(r)) = (filled.readiness, &svc.readiness) {
            insert(node, "readiness", readiness_node(r));
        }
    }
}

fn service_node<'a>(tree: &'a mut Node, name: &str) -> Option<&'a mut Node> {
    let Value::Seq(services) = &mut tree.get_mut("spec")?.get_mut("services")?.value else {
        return None;
    };
    services
        .iter_mut()
        .find(|s| s.get("name").and_then(Node::as_str) == Some(name))
}

fn insert(node: &mut Node, key: &str, value: Node) {
    if let Value::Map(entries) = &mut node.value {
        if !entries.iter().any(|e| e.key == key) {
            entries.push(Entry {
                key: key.into(),
                key_origin: Origin::Default,
                value,
            });
        }
    }
}

fn int(n: i64) -> Node {
    Node::new(Value::Int(n), Origin::Default)
}

fn text(s: &str) -> Node {
    Node::new(
        Value::Str {
            text: s.into(),
            plain: false,
        },
        Origin::Default,
    )
}

fn map(entries: Vec<(&str, Node)>) -> Node {
    Node::new(
        Value::Map(
            entries
                .into_iter()
                .map(|(key, value)| Entry {
                    key: key.into(),
                    key_origin: Origin::Default,
                    value,
                })
                .collect(),
        ),
        Origin::Default,
    )
}

fn readiness_node(r: &Readiness) -> Node {
    let probe = match &r.probe {
        Probe::Postgres {
            port,
            user,
            database,
            ..
        } => (
            "postgres",
            map(vec![
                ("port", int(i64::from(*port))),
                ("user", text(user)),
                ("database", text(database)),
            ]),
        ),
        Probe::Redis { port, .. } => ("redis", map(vec![("port", int(i64::from(*port)))])),
        // Only preset probes are filled in here.
        _ => return map(Vec::new()),
    };
    let secs = |d: Duration| int(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    map(vec![
        probe,
        ("periodSeconds", secs(r.period)),
        ("timeoutSeconds", secs(r.timeout)),
        ("failureThreshold", int(i64::from(r.failure_threshold))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_preset_gets_its_port_and_probe() {
        let mut svc = Service::test("db");
        svc.runtime = RuntimeKind::Local;
        svc.preset = Some(Preset::Postgresql);
        svc.env.insert(vars::POSTGRES_USER.into(), "shop".into());
        assert_eq!(
            apply(&mut svc),
            Filled {
                port: true,
                readiness: true
            }
        );
        assert_eq!(svc.ports, vec![5432]);
        let r = svc.readiness.expect("a probe");
        assert_eq!(r.timeout, LOCAL_TIMEOUT);
        assert!(matches!(
            r.probe,
            Probe::Postgres { port: 5432, ref user, ref database, .. } if user == "shop" && database == "shop"
        ));
    }

    #[test]
    fn configured_values_win_and_kube_gets_the_start_deadline() {
        let mut svc = Service::test("cache");
        svc.preset = Some(Preset::Redis);
        svc.ports = vec![7000];
        assert_eq!(
            apply(&mut svc),
            Filled {
                port: false,
                readiness: true
            }
        );
        let r = svc.readiness.clone().expect("a probe");
        assert_eq!(r.timeout, DEFAULT_START_DEADLINE);
        assert!(matches!(r.probe, Probe::Redis { port: 7000, .. }));
        // Applying again changes nothing.
        assert_eq!(apply(&mut svc), Filled::default());
    }

    #[test]
    fn a_local_preset_with_its_own_command_is_left_alone() {
        let mut svc = Service::test("cache");
        svc.runtime = RuntimeKind::Local;
        svc.preset = Some(Preset::Redis);
        svc.command = Some(super::super::Command::Shell("redis-server".into()));
        assert_eq!(apply(&mut svc), Filled::default());
        assert!(svc.ports.is_empty() && svc.readiness.is_none());
    }
}
