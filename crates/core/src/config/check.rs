//! Raw model -> checked [`Environment`]: the top level, cluster, secrets and hooks.
//! Services, probes and the graph have their own files. Checks keep going after a problem
//! so one run reports everything it can.

use std::path::{Component, Path, PathBuf};

use super::de::from_node;
use super::index::Index;
use super::model::*;
use super::names::{is_label, label_hint};
use super::raw::{RawCluster, RawCommand, RawConfig, RawProvider, RawService, RawVolume};
use super::secret::Secret;
use super::yaml::{Node, Value};
use super::{graph, service, ConfigError};

pub(crate) const API_VERSION: &str = "devenv/v1";

/// Collects errors while checking, locating each by the dotted path of the value.
pub(crate) struct Checker<'a> {
    pub index: &'a Index,
    pub project_dir: &'a Path,
    pub errors: Vec<ConfigError>,
}

impl Checker<'_> {
    pub fn error(&mut self, path: &str, message: String, hint: Option<String>) {
        let e = self.index.error(path, message, hint);
        self.errors.push(e);
    }

    /// Relative paths in the config are relative to the project directory (not to the
    /// config file or the caller's working directory), like docker compose.
    pub fn resolve(&self, path: &str) -> PathBuf {
        normalize(&self.project_dir.join(path))
    }

    pub fn command(&mut self, path: &str, raw: RawCommand) -> Option<Command> {
        match raw {
            RawCommand::Shell(s) if s.trim().is_empty() => {
                self.error(path, "the command is empty".into(), None);
                None
            }
            RawCommand::Exec(argv) if argv.first().is_none_or(|a| a.is_empty()) => {
                self.error(
                    path,
                    "the command list is empty or starts with an empty program".into(),
                    None,
                );
                None
            }
            RawCommand::Shell(s) => Some(Command::Shell(s)),
            RawCommand::Exec(argv) => Some(Command::Exec(argv)),
        }
    }
}

/// Drops `.` and folds `..` lexically so that paths print cleanly; symlinks are left alone
/// because the directory may not exist yet.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The longest `metadata.version` (it is a label, shown in a column).
const MAX_VERSION: usize = 64;

/// Checks the merged, interpolated tree.
pub(crate) fn environment(
    tree: &Node,
    index: &Index,
    project_dir: &Path,
    owner: Option<&str>,
) -> Result<Environment, Vec<ConfigError>> {
    let mut c = Checker {
        index,
        project_dir,
        errors: Vec::new(),
    };
    let raw = from_node::<RawConfig>(tree, "")
        .map_err(|e| c.errors.push(e))
        .ok();
    let raw_services = raw_services(tree, &mut c);

    let Some(raw) = raw else {
        return Err(c.errors);
    };
    let name = metadata_name(&mut c, &raw);
    let version = raw
        .metadata
        .as_ref()
        .and_then(|m| m.version.clone())
        .map(|v| v.0)
        .filter(|v| !v.is_empty());
    if let Some(v) = &version {
        if v.len() > MAX_VERSION || v.chars().any(char::is_control) {
            c.error(
                "metadata.version",
                format!("`metadata.version` must be one line of at most {MAX_VERSION} characters"),
                Some("e.g. `version: \"1.0\"`".into()),
            );
        }
    }
    let spec = raw.spec;
    let errors_before_spec = c.errors.len();
    let has_cluster = tree
        .get("spec")
        .and_then(|s| s.get("cluster"))
        .is_some_and(|n| !matches!(n.value, Value::Null));
    let (cluster, volumes, secrets, hooks, workspaces, networking) = match spec {
        Some(spec) => {
            let cluster = spec
                .cluster
                .and_then(|cl| cluster(&mut c, cl, name.as_deref(), owner));
            let volumes = volumes(&mut c, spec.volumes.unwrap_or_default());
            let secrets = super::secret::secrets(&mut c, spec.secrets.unwrap_or_default());
            let hooks = super::hooks::environment(&mut c, spec.hooks);
            let workspaces = super::workspace::workspaces(
                &mut c,
                spec.workspaces.unwrap_or_default(),
                owner,
                &secrets,
                has_cluster,
            );
            (
                cluster,
                volumes,
                secrets,
                hooks,
                workspaces,
                spec.networking,
            )
        }
        None => (
            None,
            Vec::new(),
            Vec::new(),
            Hooks::default(),
            Vec::new(),
            None,
        ),
    };
    // A volume or secret with an error of its own is left out of these lists; every
    // service using it would be reported as using an unknown one.
    let spec_sound = c.errors.len() == errors_before_spec;

    let mut services = Vec::new();
    let mut all_parsed = true;
    let mut ingress_keys = Vec::new();
    for (i, raw) in raw_services {
        let raw = raw.map(|mut r| {
            ingress_keys.push((i, r.ingress.take()));
            r
        });
        match raw.and_then(|r| service::check(&mut c, i, r, has_cluster)) {
            Some(mut s) => {
                for m in &mut s.volumes {
                    if let Some(VolumeKind::Configmap { digest, .. }) =
                        volumes.iter().find(|v| v.name == m.name).map(|v| &v.kind)
                    {
                        m.content = Some(digest.clone());
                    }
                }
                services.push((i, s))
            }
            None => all_parsed = false,
        }
    }
    // A service that failed its own checks would show up as an "unknown dependency" of
    // every service using it; graph errors only make sense once each service is sound.
    if all_parsed {
        graph::check(&mut c, &services);
        if spec_sound {
            references(&mut c, &services, &volumes, &secrets);
        }
        super::terraform::check_refs(&mut c, &services, &secrets);
    }
    preset_auth(&mut c, &services, &secrets);
    super::registry::check_tarballs(
        &mut c,
        &services,
        cluster.as_ref().and_then(|cl| cl.registry.as_ref()),
    );
    super::ingress::apply(
        &mut c,
        networking,
        name.as_deref(),
        &mut services,
        &ingress_keys,
    );
    if spec_sound {
        super::snapshot::check(&mut c, &services, &volumes);
    }

    match (name, c.errors.is_empty()) {
        (Some(name), true) => Ok(Environment {
            name,
            version,
            project_dir: project_dir.to_path_buf(),
            services: services.into_iter().map(|(_, s)| s).collect(),
            cluster,
            volumes,
            secrets,
            hooks,
            workspaces,
        }),
        _ => Err(c.errors),
    }
}

/// Each service is read on its own so every broken service is reported, not just the first.
fn raw_services(tree: &Node, c: &mut Checker<'_>) -> Vec<(usize, Option<RawService>)> {
    let Some(node) = tree.get("spec").and_then(|s| s.get("services")) else {
        return Vec::new();
    };
    match &node.value {
        Value::Null => Vec::new(),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let raw = from_node::<RawService>(item, &format!("spec.services[{i}]"))
                    .map_err(|e| c.errors.push(e))
                    .ok();
                (i, raw)
            })
            .collect(),
        _ => {
            c.error(
                "spec.services",
                format!("expected a list of services, found {}", node.kind_name()),
                Some("write one `- name: ...` entry per service".into()),
            );
            Vec::new()
        }
    }
}

fn metadata_name(c: &mut Checker<'_>, raw: &RawConfig) -> Option<String> {
    match raw.api_version.as_deref() {
        None => c.error(
            "apiVersion",
            "missing required key `apiVersion`".into(),
            Some(format!(
                "add `apiVersion: {API_VERSION}` at the top of the file"
            )),
        ),
        Some(API_VERSION) => {}
        Some(other) => c.error(
            "apiVersion",
            format!("unsupported apiVersion `{other}`; this devenv reads `{API_VERSION}`"),
            Some(format!("use `apiVersion: {API_VERSION}`")),
        ),
    }
    match raw.kind.as_deref() {
        None => c.error(
            "kind",
            "missing required key `kind`".into(),
            Some("add `kind: Environment`".into()),
        ),
        Some("Environment") => {}
        Some(other) => c.error(
            "kind",
            format!("unsupported kind `{other}`; expected `Environment`"),
            None,
        ),
    }
    match raw.metadata.as_ref().and_then(|m| m.name.as_deref()) {
        None => {
            let path = if raw.metadata.is_some() {
                "metadata.name"
            } else {
                "metadata"
            };
            c.error(
                path,
                "missing required key `metadata.name`".into(),
                Some("name the environment, e.g. `metadata: { name: shop }`".into()),
            );
            None
        }
        Some(name) if !is_label(name) => {
            c.error(
                "metadata.name",
                format!("`{name}` is not a valid environment name"),
                Some(label_hint(name)),
            );
            None
        }
        Some(name) => Some(name.to_owned()),
    }
}

fn cluster(
    c: &mut Checker<'_>,
    raw: RawCluster,
    env_name: Option<&str>,
    owner: Option<&str>,
) -> Option<Cluster> {
    let shared = raw.shared.unwrap_or(false);
    let provider = match raw.provider {
        None | Some(RawProvider::K3d) => ClusterProvider::K3d,
        Some(RawProvider::Kubeconfig) => ClusterProvider::Kubeconfig,
    };
    let k3d = K3d {
        agents: raw.k3d.as_ref().and_then(|k| k.agents).unwrap_or(0),
        ports: raw
            .k3d
            .as_ref()
            .and_then(|k| k.ports.as_ref())
            .map(|p| p.0.clone())
            .unwrap_or_default(),
    };
    if let Some(k3d) = &raw.k3d {
        if provider != ClusterProvider::K3d {
            c.error(
                "spec.cluster.k3d",
                "`k3d` settings only apply with `provider: k3d`".into(),
                None,
            );
        }
        for (i, rule) in k3d.ports.iter().flat_map(|p| p.0.iter()).enumerate() {
            if !rule.contains(':') {
                c.error(
                    &format!("spec.cluster.k3d.ports[{i}]"),
                    format!("k3d port rule `{rule}` needs the form `HOST:CONTAINER[@NODE]`"),
                    Some("e.g. `8080:80@loadbalancer`".into()),
                );
            }
        }
    }
    let namespace = match raw.namespace {
        Some(ns) if !is_label(&ns) => {
            c.error(
                "spec.cluster.namespace",
                format!("`{ns}` is not a valid namespace"),
                Some(label_hint(&ns)),
            );
            return None;
        }
        Some(ns) => ns,
        None if shared => {
            let Some(owner) = owner else {
                c.error(
                    "spec.cluster.shared",
                    "a shared cluster's namespace is the user's own, and the client has no DEVENV_USER or USER".into(),
                    Some("set DEVENV_USER, or set `spec.cluster.namespace`".into()),
                );
                return None;
            };
            let ns = format!("devenv-{owner}-{}", env_name?);
            if !is_label(&ns) {
                c.error(
                    "spec.cluster.shared",
                    format!("the namespace `{ns}` (devenv-<user>-<metadata.name>) is longer than 63 characters"),
                    Some("shorten `metadata.name` or DEVENV_USER, or set `spec.cluster.namespace`".into()),
                );
                return None;
            }
            ns
        }
        None => {
            let ns = format!("devenv-{}", env_name?);
            if !is_label(&ns) {
                c.error(
                    "metadata.name",
                    format!(
                        "the cluster namespace `{ns}` derived from `metadata.name` is longer than 63 characters"
                    ),
                    Some(format!(
                        "shorten `metadata.name` to at most {} characters, or set `spec.cluster.namespace`",
                        63 - "devenv-".len()
                    )),
                );
                return None;
            }
            ns
        }
    };
    let policy = super::quota::check(c, raw.quota, raw.limit_range);
    let registry = super::registry::check(c, raw.image);
    Some(Cluster {
        provider,
        name: raw.name,
        context: raw.context,
        namespace,
        k3d,
        shared,
        policy,
        snapshot_image: raw.snapshot_image.filter(|i| !i.trim().is_empty()),
        registry,
    })
}

fn volumes(c: &mut Checker<'_>, raw: Vec<RawVolume>) -> Vec<Volume> {
    let mut out: Vec<Volume> = Vec::new();
    for (i, vol) in raw.into_iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        let Some(name) = vol.name.clone() else {
            c.error(&path, "volume has no `name`".into(), None);
            continue;
        };
        if !is_label(&name) {
            c.error(
                &format!("{path}.name"),
                format!("`{name}` is not a valid volume name"),
                Some(label_hint(&name)),
            );
            continue;
        }
        if out.iter().any(|v| v.name == name) {
            c.error(
                &format!("{path}.name"),
                format!("volume `{name}` is defined twice"),
                None,
            );
            continue;
        }
        if let Some(v) = super::volume::check(c, &path, name, vol) {
            out.push(v);
        }
    }
    out
}

/// A Kubernetes quantity: a number with an optional binary or decimal suffix.
pub(crate) fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    !digits.is_empty()
        && digits.parse::<f64>().is_ok_and(|n| n >= 0.0)
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
        )
}

/// A postgresql preset without a password does not start (the official image refuses
/// to, and so does the local preset): say so now, not when `up` gets there. The
/// password may come from one of the service's secrets (in both runtimes).
fn preset_auth(c: &mut Checker<'_>, services: &[(usize, Service)], secrets: &[Secret]) {
    use super::preset::{postgres_has_auth, vars};
    for (i, svc) in services {
        // From a chart, the chart's values decide its auth (bitnami's generates a
        // password into a Secret of its own).
        if svc.preset != Some(Preset::Postgresql) || svc.command.is_some() || svc.chart.is_some() {
            continue;
        }
        let from_secret = svc.secrets.iter().any(|name| {
            secrets
                .iter()
                .any(|s| &s.name == name && s.may_set(vars::POSTGRES_PASSWORD))
        });
        if postgres_has_auth(&svc.env) || from_secret {
            continue;
        }
        let hint = "set `env: { POSTGRES_PASSWORD: \"${DB_PASSWORD}\" }` (the value from .env or your shell) or give it a secret with POSTGRES_PASSWORD, or `POSTGRES_HOST_AUTH_METHOD: trust` to allow connections without a password";
        c.error(
            &format!("spec.services[{i}].type"),
            format!(
                "service `{}` (postgresql) has no POSTGRES_PASSWORD; the official image refuses to start without one, and so does devenv",
                svc.name
            ),
            Some(hint.into()),
        );
    }
}

/// Service references to environment-level volumes and secrets.
fn references(
    c: &mut Checker<'_>,
    services: &[(usize, Service)],
    volumes: &[Volume],
    secrets: &[Secret],
) {
    for (i, svc) in services {
        for (j, m) in svc.volumes.iter().enumerate() {
            if !volumes.iter().any(|v| v.name == m.name) {
                let known: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
                c.error(
                    &format!("spec.services[{i}].volumes[{j}]"),
                    format!("service `{}` mounts unknown volume `{}`", svc.name, m.name),
                    Some(match super::suggest::closest(&m.name, known) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "declare it under `spec.volumes`".into(),
                    }),
                );
            }
        }
        size_in_containers(c, services, *i, svc, volumes);
        for (j, name) in svc.secrets.iter().enumerate() {
            if !secrets.iter().any(|s| &s.name == name) {
                c.error(
                    &format!("spec.services[{i}].secrets[{j}]"),
                    format!("service `{}` uses unknown secret `{name}`", svc.name),
                    Some("declare it under `spec.secrets`".into()),
                );
            }
        }
    }
}

/// A Docker volume has no size: `size` on a persistent or ephemeral volume that only
/// container services mount would do nothing, so it is refused where the container
/// mounts it. (Mounted by a kubernetes service too, it sizes that claim or emptyDir.)
fn size_in_containers(
    c: &mut Checker<'_>,
    services: &[(usize, Service)],
    i: usize,
    svc: &Service,
    volumes: &[Volume],
) {
    if svc.runtime != RuntimeKind::Container {
        return;
    }
    for (j, m) in svc.volumes.iter().enumerate() {
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            continue;
        };
        let sized = matches!(
            v.kind,
            VolumeKind::Persistent { .. } | VolumeKind::Ephemeral
        );
        let Some(size) = v.size.as_ref().filter(|_| sized) else {
            continue;
        };
        let on_kube = services.iter().any(|(_, s)| {
            s.runtime == RuntimeKind::Kubernetes && s.volumes.iter().any(|n| n.name == v.name)
        });
        if !on_kube {
            c.error(
                &format!("spec.services[{i}].volumes[{j}]"),
                format!(
                    "volume `{}` has `size: {size}`, which means nothing for service `{}`, a container: a Docker volume has no size",
                    v.name, svc.name
                ),
                Some(format!(
                    "remove `size` from volume `{}` (it sizes a Kubernetes claim), or use `type: tmpfs` for a size-limited volume",
                    v.name
                )),
            );
        }
    }
}
