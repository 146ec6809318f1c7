//! One service: which runtime runs it, and every per-service field in checked form.

use std::collections::BTreeMap;

use super::check::Checker;
use super::model::*;
use super::names::{is_label, label_hint};
use super::raw::{
    RawAction, RawOnSync, RawPort, RawPortRef, RawPreset, RawProtocol, RawRestart, RawRuntime,
    RawService,
};
use super::readiness;

/// Helm refuses release names longer than this (they become label values with a suffix).
const MAX_RELEASE_NAME: usize = 53;

pub(crate) fn port(c: &mut Checker<'_>, path: &str, n: i64) -> Option<u16> {
    match u16::try_from(n) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            c.error(path, format!("port {n} is out of range 1-65535"), None);
            None
        }
    }
}

/// `LOCAL:REMOTE`, `PORT`, or with a port's name as the remote side (`8080:http`,
/// resolved to its target port; a bare name forwards its `port` locally).
fn forward_rule(rule: &str, ports: &[PortSpec]) -> Option<(u16, u16)> {
    let parse = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p > 0);
    let named = |s: &str| {
        ports
            .iter()
            .find(|p| p.name.as_deref() == Some(s.trim()))
            .map(|p| (p.port, p.target_port))
    };
    match rule.split_once(':') {
        Some((local, remote)) => Some((
            parse(local)?,
            parse(remote).or_else(|| named(remote).map(|(_, target)| target))?,
        )),
        None => parse(rule).map(|p| (p, p)).or_else(|| named(rule)),
    }
}

/// An IANA_SVC_NAME, as Kubernetes wants a port's name: 1-15 characters of lowercase
/// letters, digits and `-`, with a letter, no `--`, no `-` at either end.
fn is_port_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// The service's `ports`: numbers or the long form; names unique.
fn ports(c: &mut Checker<'_>, at: &dyn Fn(&str) -> String, raw: Vec<RawPort>) -> Vec<PortSpec> {
    let mut out: Vec<PortSpec> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let key = at(&format!("ports[{i}]"));
        match p {
            RawPort::Number(n) => {
                if let Some(n) = port(c, &key, n) {
                    out.push(PortSpec::number(n));
                }
            }
            RawPort::Spec(spec) => {
                let Some(number) = spec.port else {
                    c.error(
                        &key,
                        "port has no `port`".into(),
                        Some("e.g. `{ name: http, port: 8080 }`".into()),
                    );
                    continue;
                };
                let Some(number) = port(c, &format!("{key}.port"), number) else {
                    continue;
                };
                let target = match spec.target_port {
                    Some(t) => match port(c, &format!("{key}.targetPort"), t) {
                        Some(t) => t,
                        None => continue,
                    },
                    None => number,
                };
                if let Some(name) = &spec.name {
                    if !is_port_name(name) {
                        c.error(
                            &format!("{key}.name"),
                            format!("`{name}` is not a valid port name"),
                            Some("use at most 15 lowercase letters, digits and `-`, with at least one letter (e.g. `http`, `grpc-api`)".into()),
                        );
                        continue;
                    }
                    if out.iter().any(|p| p.name.as_ref() == Some(name)) {
                        c.error(
                            &format!("{key}.name"),
                            format!("port name `{name}` is used twice"),
                            None,
                        );
                        continue;
                    }
                }
                out.push(PortSpec {
                    name: spec.name,
                    port: number,
                    target_port: target,
                    protocol: match spec.protocol {
                        None | Some(RawProtocol::Tcp) => Protocol::Tcp,
                        Some(RawProtocol::Udp) => Protocol::Udp,
                        Some(RawProtocol::Sctp) => Protocol::Sctp,
                    },
                });
            }
        }
    }
    out
}

/// A probe's `port`: a number, or a port's name (its target port: the probe reaches
/// the process or container, as a forward does).
pub(crate) fn port_ref(
    c: &mut Checker<'_>,
    path: &str,
    raw: RawPortRef,
    ports: &[PortSpec],
) -> Option<u16> {
    match raw {
        RawPortRef::Number(n) => port(c, path, n),
        RawPortRef::Name(name) => {
            if let Some(p) = ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
            {
                return Some(p.target_port);
            }
            let names: Vec<&str> = ports.iter().filter_map(|p| p.name.as_deref()).collect();
            let hint = match super::suggest::closest(&name, names.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None if names.is_empty() => {
                    "name a port under `ports:` (`{ name: http, port: 8080 }`) or give a number"
                        .to_owned()
                }
                None => format!("the service's named ports: {}", names.join(", ")),
            };
            c.error(
                path,
                format!("the service has no port named `{name}`"),
                Some(hint),
            );
            None
        }
    }
}

/// Checks one service; `None` when it has errors (already recorded).
pub(crate) fn check(
    c: &mut Checker<'_>,
    index: usize,
    mut raw: RawService,
    has_cluster: bool,
) -> Option<Service> {
    let at = |key: &str| format!("spec.services[{index}].{key}");
    let errors_before = c.errors.len();
    // `type: application` says what no `type` says: the other keys decide.
    if matches!(raw.preset, Some(RawPreset::Application)) {
        raw.preset = None;
    }
    let plugin_kind = match raw.preset.take() {
        Some(RawPreset::Plugin(kind)) => Some(kind),
        other => {
            raw.preset = other;
            None
        }
    };

    let name = match raw.name.clone() {
        None => {
            c.error(
                &format!("spec.services[{index}]"),
                "service has no `name`".into(),
                Some("add `name: <service-name>`".into()),
            );
            String::new()
        }
        Some(name) if !is_label(&name) => {
            c.error(
                &at("name"),
                format!("`{name}` is not a valid service name"),
                Some(label_hint(&name)),
            );
            name
        }
        Some(name) => name,
    };
    let shown = if name.is_empty() {
        format!("#{}", index + 1)
    } else {
        name.clone()
    };

    let runtime = match &plugin_kind {
        Some(kind) => super::plugin::runtime(c, &at(""), &shown, kind, &raw),
        None => runtime(c, index, &shown, &raw, has_cluster),
    };
    let plugin = plugin_kind
        .and_then(|kind| super::plugin::check(c, &at("settings"), kind, raw.settings.take()));
    if plugin.is_none() && raw.settings.is_some() {
        c.error(
            &at("settings"),
            format!("`settings` applies to a service-type plugin (`type: <plugin>`); `{shown}` is not one"),
            None,
        );
    }
    if runtime == Some(RuntimeKind::Container) {
        container_keys(c, index, &shown, &raw);
    }
    let terraform = raw
        .terraform
        .take()
        .and_then(|t| super::terraform::check(c, &at("terraform"), t));
    let command = raw.command.and_then(|cmd| c.command(&at("command"), cmd));
    let workdir = match &raw.workdir {
        Some(dir) => {
            let resolved = c.resolve(dir);
            if runtime == Some(RuntimeKind::Local) && !resolved.is_dir() {
                c.error(
                    &at("workdir"),
                    format!(
                        "workdir `{dir}` does not exist ({}); relative paths start at the project directory",
                        resolved.display()
                    ),
                    Some("create the directory or correct the path".into()),
                );
            }
            resolved
        }
        None => c.project_dir.to_path_buf(),
    };
    let source = raw.source.as_deref().and_then(|dir| {
        let resolved = c.resolve(dir);
        if resolved.is_dir() {
            Some(resolved)
        } else {
            c.error(
                &at("source"),
                format!(
                    "source directory `{dir}` does not exist ({}); relative paths start at the project directory",
                    resolved.display()
                ),
                Some("create the directory or correct the path".into()),
            );
            None
        }
    });
    let env_files: Vec<std::path::PathBuf> = raw
        .env_file
        .unwrap_or_default()
        .0
        .iter()
        .map(|f| c.resolve(f))
        .collect();
    let mut profiles: Vec<String> = Vec::new();
    for (i, p) in raw.profiles.unwrap_or_default().0.into_iter().enumerate() {
        if !is_label(&p) {
            c.error(
                &at(&format!("profiles[{i}]")),
                format!("`{p}` is not a valid profile name"),
                Some(label_hint(&p)),
            );
        } else if !profiles.contains(&p) {
            profiles.push(p);
        }
    }
    let env: BTreeMap<String, String> = raw
        .env
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let port_specs = ports(c, &at, raw.ports.take().unwrap_or_default().0);
    let mut forward = Vec::new();
    for (i, rule) in raw.forward.unwrap_or_default().0.into_iter().enumerate() {
        match forward_rule(&rule, &port_specs) {
            Some(pair) => forward.push(pair),
            None => c.error(
                &at(&format!("forward[{i}]")),
                format!("forward rule `{rule}` is not `LOCAL:REMOTE` with ports 1-65535 or a named port"),
                Some("e.g. `8080:80` forwards localhost:8080 to the service's port 80, `8080:http` to its port named `http`".into()),
            ),
        }
    }
    let readiness = raw
        .readiness
        .and_then(|r| readiness::check(c, &at("readiness"), r, &port_specs));
    let ports: Vec<u16> = port_specs.iter().map(|p| p.port).collect();
    let restart = match raw.restart {
        // A preset is a database: one that crashed comes back, as in the cluster.
        None if raw.preset.is_some() => RestartPolicy::OnFailure,
        None | Some(RawRestart::Never) => RestartPolicy::Never,
        Some(RawRestart::OnFailure) => RestartPolicy::OnFailure,
        Some(RawRestart::Always) => RestartPolicy::Always,
    };
    let oneshot = raw.oneshot.unwrap_or(false);
    if oneshot && restart == RestartPolicy::Always {
        c.error(
            &at("restart"),
            "a oneshot service cannot use `restart: always`".into(),
            Some("use `restart: never` or `restart: on-failure` (retry until it succeeds)".into()),
        );
    }
    let watch = raw.watch.map(|w| {
        let paths = match w.paths {
            Some(paths) => paths
                .0
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let resolved = c.resolve(p);
                    if !resolved.exists() {
                        missing_watch_path(
                            c,
                            &at(&format!("watch.paths[{i}]")),
                            p,
                            &resolved,
                            &workdir,
                        );
                    }
                    resolved
                })
                .collect(),
            // A built container's change is one in its build context.
            None => match (
                runtime,
                raw.build.as_ref().and_then(|b| b.context.as_deref()),
            ) {
                (Some(RuntimeKind::Container), Some(dir)) => vec![c.resolve(dir)],
                _ => vec![source.clone().unwrap_or_else(|| workdir.clone())],
            },
        };
        let action = match w.action {
            None | Some(RawAction::Restart) => WatchAction::Restart,
            Some(RawAction::Exec(cmd)) => match c.command(&at("watch.action.exec"), cmd) {
                Some(cmd) => WatchAction::Exec(cmd),
                None => WatchAction::Restart,
            },
        };
        Watch {
            paths,
            ignore: w.ignore.unwrap_or_default().0,
            action,
        }
    });
    let dev = raw.dev.map(|d| Dev {
        command: d.command.and_then(|cmd| c.command(&at("dev.command"), cmd)),
        image: d.image,
        sync: d
            .sync
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(i, rule)| {
                if let Some(why) = crate::sync::refused_target(&rule.to) {
                    c.error(
                        &at(&format!("dev.sync[{i}].to")),
                        why,
                        Some("give the app's own directory in the container, e.g. `/app`".into()),
                    );
                    return None;
                }
                let from = match (&rule.from, &source) {
                    (Some(from), _) => c.resolve(from),
                    (None, Some(source)) => source.clone(),
                    (None, None) if raw.source.is_some() => return None,
                    (None, None) => {
                        c.error(
                            &at(&format!("dev.sync[{i}]")),
                            "sync rule has no `from` and the service has no `source`".into(),
                            Some("add `from: ./dir` to the rule, or `source: ./dir` to the service".into()),
                        );
                        return None;
                    }
                };
                if !from.exists() {
                    let written = rule.from.as_deref().unwrap_or_default();
                    c.error(
                        &at(&format!("dev.sync[{i}].from")),
                        format!(
                            "sync source `{written}` does not exist ({}); relative paths start at the project directory",
                            from.display()
                        ),
                        Some("create it or correct the path".into()),
                    );
                    return None;
                }
                Some(SyncRule {
                    from,
                    to: rule.to,
                    exclude: rule.exclude.unwrap_or_default().0,
                })
            })
            .collect(),
        on_sync: match d.on_sync {
            None | Some(RawOnSync::None) => OnSync::None,
            Some(RawOnSync::Restart) => OnSync::Restart,
            Some(RawOnSync::Exec(cmd)) => c
                .command(&at("dev.onSync.exec"), cmd)
                .map(OnSync::Exec)
                .unwrap_or_default(),
        },
    });
    let build = raw.build.map(|b| Build {
        context: match (&b.context, &source) {
            (Some(dir), _) => c.resolve(dir),
            (None, Some(source)) => source.clone(),
            (None, None) => c.resolve("."),
        },
        dockerfile: b.dockerfile.as_deref().map(|d| c.resolve(d)),
        args: b
            .args
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect(),
        target: b.target.filter(|t| !t.is_empty()),
        tarball: b.tarball.as_deref().map(|t| c.resolve(t)),
    });
    let values = raw.values.and_then(|v| match serde_json::to_value(&v) {
        Ok(j @ serde_json::Value::Object(_)) => Some(j),
        Ok(serde_json::Value::Null) => None,
        _ => {
            c.error(
                &at("values"),
                "helm `values` must be a mapping".into(),
                Some("e.g. `values: { replicaCount: 1 }`".into()),
            );
            None
        }
    });
    if values.is_some() && raw.chart.is_none() {
        c.error(
            &at("values"),
            "`values` only applies to a `chart` service".into(),
            None,
        );
    }
    let resources = raw.resources.map(|r| {
        let mut out = Resources::default();
        for (kind, map, into) in [
            ("requests", r.requests, &mut out.requests),
            ("limits", r.limits, &mut out.limits),
        ] {
            for (k, v) in map.unwrap_or_default() {
                if !super::check::is_quantity(&v.0) {
                    c.error(
                        &at(&format!("resources.{kind}.{k}")),
                        format!("`{}` is not a quantity", v.0),
                        Some("e.g. `cpu: 250m`, `memory: 256Mi`".into()),
                    );
                }
                into.insert(k, v.0);
            }
        }
        out
    });
    let mut volumes = Vec::new();
    let mut binds = Vec::new();
    for (i, rule) in raw.volumes.unwrap_or_default().0.into_iter().enumerate() {
        let key = at(&format!("volumes[{i}]"));
        let parts: Vec<&str> = rule.split(':').collect();
        let (source, path, mode) = match parts[..] {
            [source, path] => (source, path, None),
            [source, path, mode] => (source, path, Some(mode)),
            _ => ("", "", None),
        };
        let read_only = match mode {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(other) => {
                c.error(
                    &key,
                    format!("mount mode `{other}` in `{rule}` is not `ro` or `rw`"),
                    None,
                );
                continue;
            }
        };
        let is_bind = source.starts_with('.') || source.starts_with('/');
        if source.is_empty() || !path.starts_with('/') {
            c.error(
                &key,
                format!("volume mount `{rule}` is not `VOLUME:/path` or `./host/dir:/path`"),
                Some(
                    "e.g. `db-data:/var/lib/postgresql/data`, or `./site:/www:ro` (containers)"
                        .into(),
                ),
            );
        } else if is_bind {
            let host = c.resolve(source);
            if runtime != Some(RuntimeKind::Container) {
                c.error(
                    &key,
                    format!("bind mount `{rule}` applies to container services only"),
                    Some("declare a volume under `spec.volumes` and mount it by name".into()),
                );
            } else if !host.exists() {
                c.error(
                    &key,
                    format!(
                        "bind mount source `{source}` does not exist ({}); relative paths start at the project directory",
                        host.display()
                    ),
                    Some("create it or correct the path".into()),
                );
            } else {
                binds.push(BindMount {
                    host,
                    path: path.to_owned(),
                    read_only,
                });
            }
        } else if read_only {
            c.error(
                &key,
                format!("`:ro` in `{rule}` applies to bind mounts only"),
                None,
            );
        } else {
            volumes.push(VolumeMount {
                name: source.to_owned(),
                path: path.to_owned(),
                content: None,
            });
        }
    }
    match raw.replicas {
        Some(0) => c.error(
            &at("replicas"),
            "`replicas: 0` would never become ready".into(),
            Some("leave the service out of `devenv up` instead".into()),
        ),
        // Kubernetes counts replicas in a signed 32-bit integer.
        Some(n) if i32::try_from(n).is_err() => c.error(
            &at("replicas"),
            format!("`replicas` must be at most {}", i32::MAX),
            None,
        ),
        _ => {}
    }
    if raw.chart.is_some() && name.len() > MAX_RELEASE_NAME {
        c.error(
            &at("name"),
            format!(
                "service name `{name}` is too long for a helm release name ({} characters, helm allows {MAX_RELEASE_NAME})",
                name.len()
            ),
            Some(format!(
                "a chart service's name is its release name: shorten it to at most {MAX_RELEASE_NAME} characters"
            )),
        );
    }
    let workload = raw.workload.as_deref().and_then(|w| {
        let parsed = WorkloadRef::parse(w);
        if parsed.is_none() {
            c.error(
                &at("workload"),
                format!("`{w}` is not `KIND/NAME` of a workload"),
                Some("e.g. `deployment/api` (deployment, statefulset or daemonset)".into()),
            );
        }
        parsed
    });
    if let Some(d) = &dev {
        let has_command = d.command.is_some() || (command.is_some() && raw.image.is_some());
        if d.on_sync == OnSync::Restart && !has_command {
            c.error(
                &at("dev.onSync"),
                "`onSync: restart` needs the command to restart".into(),
                Some("set `dev.command` (devenv runs it under a small supervisor in the container so it can restart it without a new pod)".into()),
            );
        }
    }
    let preset = raw.preset.and_then(|p| match p {
        RawPreset::Postgresql => Some(Preset::Postgresql),
        RawPreset::Redis => Some(Preset::Redis),
        RawPreset::Application | RawPreset::Plugin(_) => None,
    });

    let hooks = super::hooks::service(c, &at("hooks"), raw.hooks.take(), runtime);

    if c.errors.len() > errors_before {
        return None;
    }
    let deps = raw.dependencies.clone().unwrap_or_default().0;
    Some(Service {
        name,
        runtime: runtime?,
        command,
        workdir,
        env,
        env_files,
        profiles,
        source,
        ports,
        port_specs,
        dependencies: deps.iter().map(|(n, _)| n.clone()).collect(),
        restart_with: deps
            .iter()
            .filter(|(_, o)| o.restart == Some(true))
            .map(|(n, _)| n.clone())
            .collect(),
        readiness,
        restart,
        oneshot,
        watch,
        image: raw.image,
        manifests: raw.manifests.as_deref().map(|m| c.resolve(m)),
        chart: raw.chart,
        workload,
        preset,
        forward,
        build,
        values,
        replicas: raw.replicas.unwrap_or(1),
        resources,
        volumes,
        binds,
        secrets: raw.secrets.unwrap_or_default().0,
        dev,
        hooks,
        terraform,
        plugin,
        // Set by `ingress::apply` once every service is checked.
        ingress: None,
        snapshot_live: raw.snapshot == Some(super::snapshot::RawSnapshot::Live),
        sensitive_env: Default::default(),
        sensitive_revision: String::new(),
    })
}

/// A watch path that isn't there watches nothing, silently; the usual cause is a path
/// written relative to `workdir`, so that is offered when it exists.
fn missing_watch_path(
    c: &mut Checker<'_>,
    path: &str,
    written: &str,
    resolved: &std::path::Path,
    workdir: &std::path::Path,
) {
    let from_workdir = c.resolve(&workdir.join(written).to_string_lossy());
    let hint = if from_workdir.exists() && workdir != c.project_dir {
        let shown = from_workdir
            .strip_prefix(c.project_dir)
            .map(|p| format!("./{}", p.display()))
            .unwrap_or_else(|_| from_workdir.display().to_string());
        format!("it exists relative to `workdir`: write `{shown}`")
    } else {
        "create it or correct the path".to_owned()
    };
    c.error(
        path,
        format!(
            "watch path `{written}` does not exist ({}); relative watch paths start at the project directory, not at `workdir`",
            resolved.display()
        ),
        Some(hint),
    );
}

/// The runtime follows from what the service says it runs; combinations that name two
/// different things to run are errors rather than a silent precedence rule.
fn runtime(
    c: &mut Checker<'_>,
    index: usize,
    name: &str,
    raw: &RawService,
    has_cluster: bool,
) -> Option<RuntimeKind> {
    let sources: Vec<&str> = [
        ("image", raw.image.is_some() || raw.build.is_some()),
        ("chart", raw.chart.is_some()),
        ("manifests", raw.manifests.is_some()),
        ("workload", raw.workload.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    if sources.len() > 1 {
        c.error(
            &format!("spec.services[{index}].{}", sources[1]),
            format!(
                "service `{name}` sets both `{}` and `{}`; a service runs from one of `image`/`build`, `chart`, `manifests` or `workload`",
                sources[0], sources[1]
            ),
            Some("split it into two services".into()),
        );
        return None;
    }
    // A preset's image may be overridden (`type: redis` + `image: my/redis:7`), or
    // the preset installed from a chart (`type: postgresql` + `chart: bitnami/postgresql`).
    if let (Some(_), Some(source)) = (
        raw.preset.as_ref(),
        sources.first().filter(|s| **s != "image" && **s != "chart"),
    ) {
        c.error(
            &format!("spec.services[{index}].{source}"),
            format!("service `{name}` has `type` (a preset) and `{source}`; use one of them"),
            None,
        );
        return None;
    }
    let at = |key: &str| format!("spec.services[{index}].{key}");
    if raw.terraform.is_some() {
        let refused = super::terraform::refused_keys(raw);
        if let Some(key) = refused.first() {
            c.error(
                &at(key),
                format!("`{key}` does not apply to service `{name}`, a terraform service"),
                Some("a terraform service has `terraform`, `dependencies`, `env`, `envFile`, `secrets` and `profiles`; run other things as services of their own".into()),
            );
            return None;
        }
        return Some(RuntimeKind::Terraform);
    }
    match raw.runtime {
        Some(RawRuntime::Container) => {
            if let Some(source) = sources.iter().find(|s| **s != "image") {
                c.error(
                    &at(source),
                    format!("service `{name}` has `runtime: container` and `{source}`; a container runs from `image` (or `build`)"),
                    Some("remove `runtime: container` to run it on Kubernetes".into()),
                );
                return None;
            }
            // A preset runs its image (`postgres:16`, `redis:7`, or `image:`).
            if sources.is_empty() && raw.preset.is_none() {
                c.error(
                    &at("runtime"),
                    format!("service `{name}` has `runtime: container` but no `image` or `build`"),
                    Some("add `image: <name:tag>` (an image the local engine has)".into()),
                );
                return None;
            }
            return Some(RuntimeKind::Container);
        }
        Some(RawRuntime::Local) if !sources.is_empty() => {
            c.error(
                &at("runtime"),
                format!("service `{name}` has `runtime: local` and `{}`; a local service runs `command` on the host", sources[0]),
                Some("remove `runtime: local`, or the image source".into()),
            );
            return None;
        }
        Some(RawRuntime::Kubernetes) if sources.is_empty() && raw.preset.is_none() => {
            c.error(
                &at("runtime"),
                format!("service `{name}` has `runtime: kubernetes` but nothing to deploy"),
                Some("add `image`, `chart`, `manifests` or `workload`".into()),
            );
            return None;
        }
        Some(RawRuntime::Kubernetes) if !has_cluster => {
            c.error(
                &at("runtime"),
                format!("service `{name}` has `runtime: kubernetes` but the environment has no `spec.cluster`"),
                Some("add `spec.cluster`, or use `runtime: container` for the local Docker engine".into()),
            );
            return None;
        }
        Some(RawRuntime::Kubernetes) => return Some(RuntimeKind::Kubernetes),
        Some(RawRuntime::Local) | None => {}
    }
    // Without a cluster an image runs on the local container engine.
    if sources == ["image"] && !has_cluster && raw.runtime.is_none() && raw.preset.is_none() {
        return Some(RuntimeKind::Container);
    }
    if !sources.is_empty() {
        return Some(RuntimeKind::Kubernetes);
    }
    if raw.preset.is_some() {
        return Some(if has_cluster && raw.runtime.is_none() {
            RuntimeKind::Kubernetes
        } else {
            RuntimeKind::Local
        });
    }
    if raw.command.is_some() {
        return Some(RuntimeKind::Local);
    }
    c.error(
        &format!("spec.services[{index}]"),
        format!("service `{name}` has nothing to run"),
        Some("add `command:` (local process) or `image:` (a container)".into()),
    );
    None
}

/// Keys that mean nothing to a container on the local engine are refused rather than
/// ignored (a key that parses but does nothing is a defect).
fn container_keys(c: &mut Checker<'_>, index: usize, name: &str, raw: &RawService) {
    let refused = [
        (
            "workdir",
            raw.workdir.is_some(),
            "the image's WORKDIR applies; set it in the Dockerfile",
        ),
        (
            "replicas",
            raw.replicas.is_some(),
            "one container runs per service",
        ),
        (
            "resources",
            raw.resources.is_some(),
            "resource limits apply to Kubernetes services",
        ),
        (
            "dev",
            raw.dev.is_some(),
            "dev mode applies to Kubernetes workloads",
        ),
        (
            "watch",
            raw.watch.is_some() && raw.build.is_none(),
            "watch rules apply to local services and to containers built with `build:` (a change rebuilds the image and replaces the container)",
        ),
    ];
    if let (Some(_), Some(RawAction::Exec(_))) = (
        &raw.build,
        raw.watch.as_ref().and_then(|w| w.action.as_ref()),
    ) {
        c.error(
            &format!("spec.services[{index}].watch.action"),
            format!("`action: exec` does not apply to service `{name}`, a container built on the local engine"),
            Some("a change in its build context rebuilds the image and replaces the container; leave `action` out (or `action: restart`)".into()),
        );
    }
    for (key, set, why) in refused {
        if set {
            c.error(
                &format!("spec.services[{index}].{key}"),
                format!(
                    "`{key}` does not apply to service `{name}`, a container on the local engine"
                ),
                Some(why.into()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::forward_rule;
    use crate::config::{PortSpec, Protocol};

    #[test]
    fn forward_rules() {
        let ports = [PortSpec {
            name: Some("http".into()),
            port: 80,
            target_port: 8080,
            protocol: Protocol::Tcp,
        }];
        assert_eq!(forward_rule("8080:80", &ports), Some((8080, 80)));
        assert_eq!(forward_rule("5432", &ports), Some((5432, 5432)));
        assert_eq!(forward_rule("0:80", &ports), None);
        assert_eq!(forward_rule("a:b", &ports), None);
        assert_eq!(forward_rule("9000:http", &ports), Some((9000, 8080)));
        assert_eq!(forward_rule("http", &ports), Some((80, 8080)));
        assert_eq!(forward_rule("9000:grpc", &ports), None);
    }
}
