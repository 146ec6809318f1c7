//! `spec.workspaces`: persistent per-user development pods on the environment's cluster
//! (`devenv workspace ...`). The raw shape, the checked model and its checks; the
//! objects are rendered by `kube::workspace`.
//!
//! A workspace always has the three volumes a person's work lives in (`workspace`,
//! `history`, `config`); an entry of `volumes` with one of those names changes its
//! size, class or path, any other name adds a volume.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::check::{is_quantity, Checker};
use super::model::{Resources, SyncRule};
use super::names::{is_label, label_hint};
use super::raw::{RawResources, Strings, Text};
use super::secret::Secret;

/// The image's user: what `runAsUser` and `fsGroup` are.
pub const WORKSPACE_UID: i64 = 1000;
/// The home directory (a writable emptyDir under a read-only root filesystem).
pub const WORKSPACE_HOME: &str = "/home/dev";
/// Longest workspace or owner name: a StatefulSet's name `ws-<name>-<owner>` takes a
/// pod ordinal and a `controller-revision-hash` label (name + 11 characters) that must
/// stay a 63-character label.
pub const MAX_STATEFULSET_NAME: usize = 52;

/// The volumes every workspace has: (name, mount path, default size).
pub const DEFAULT_VOLUMES: [(&str, &str, &str); 3] = [
    ("workspace", "/workspace", "10Gi"),
    ("history", "/home/dev/.history", "1Gi"),
    ("config", "/home/dev/.config", "1Gi"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawWorkspace {
    pub name: Option<String>,
    pub image: Option<String>,
    /// The container's command; default: wait, doing nothing, until stopped.
    pub command: Option<Strings>,
    pub resources: Option<RawResources>,
    pub volumes: Option<Vec<RawWorkspaceVolume>>,
    /// `spec.secrets` names: their values become environment variables.
    pub secrets: Option<Strings>,
    pub env: Option<BTreeMap<String, Text>>,
    pub ports: Option<Vec<u16>>,
    /// `2h`, `30m`, `90s`, or seconds; none: never stopped for idleness.
    pub idle_timeout: Option<Text>,
    /// Shell commands run before the workspace starts, in its image with its volumes.
    pub init: Option<Strings>,
    /// Default true; false for an image that writes outside its volumes, `/tmp` and
    /// the home directory.
    pub read_only_root_filesystem: Option<bool>,
    /// Pod CPU (millicores) above which the workspace counts as in use; default 50.
    pub cpu_active_millicores: Option<u32>,
    /// Local directories `devenv workspace sync` copies into the workspace, as
    /// `dev.sync` does into a dev pod.
    pub sync: Option<Vec<RawWorkspaceSync>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawWorkspaceSync {
    pub from: Option<String>,
    pub to: Option<String>,
    pub exclude: Option<Strings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawWorkspaceVolume {
    pub name: Option<String>,
    pub mount_path: Option<String>,
    pub size: Option<Text>,
    pub storage_class: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub name: String,
    /// Who it belongs to (a label): `DEVENV_USER`, else `USER`, of the client.
    pub owner: String,
    pub image: String,
    pub command: Vec<String>,
    pub resources: Option<Resources>,
    pub volumes: Vec<WorkspaceVolume>,
    pub secrets: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<u16>,
    pub idle_timeout: Option<Duration>,
    pub init: Vec<String>,
    pub read_only_root_filesystem: bool,
    pub cpu_active_millicores: u32,
    /// `devenv workspace sync`'s rules; each `to` is inside one of `volumes`.
    pub sync: Vec<SyncRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceVolume {
    pub name: String,
    pub mount_path: String,
    pub size: String,
    pub storage_class: Option<String>,
}

impl Workspace {
    /// The StatefulSet (and Service) name: one per workspace and owner, so two people's
    /// workspaces of one name never meet, even in one namespace.
    pub fn object_name(&self) -> String {
        format!("ws-{}-{}", self.name, self.owner)
    }
}

/// The owner's name for labels and object names: the client's `DEVENV_USER`, else
/// `USER`, else `LOGNAME`, lowercased with anything outside `[a-z0-9-]` made `-`.
pub fn owner_of(vars: &BTreeMap<String, String>) -> Option<String> {
    let raw = ["DEVENV_USER", "USER", "LOGNAME"]
        .iter()
        .filter_map(|k| vars.get(*k))
        .find(|v| !v.trim().is_empty())?;
    let mut out: String = raw
        .trim()
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    out = out.trim_matches('-').to_owned();
    out.truncate(32);
    let out = out.trim_end_matches('-').to_owned();
    (!out.is_empty()).then_some(out)
}

/// `2h`, `30m`, `1h30m`, `90s`, or a number of seconds.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).ok()
}

/// Checks `spec.workspaces`; `owner` is the client's user ([`owner_of`]).
pub(crate) fn workspaces(
    c: &mut Checker<'_>,
    raw: Vec<RawWorkspace>,
    owner: Option<&str>,
    secrets: &[Secret],
    has_cluster: bool,
) -> Vec<Workspace> {
    let mut out: Vec<Workspace> = Vec::new();
    if !raw.is_empty() && !has_cluster {
        c.error(
            "spec.workspaces",
            "workspaces run on a cluster, and this config has no `spec.cluster`".into(),
            Some("add `spec.cluster` (e.g. `provider: kubeconfig`)".into()),
        );
    }
    for (i, ws) in raw.into_iter().enumerate() {
        let path = format!("spec.workspaces[{i}]");
        if let Some(w) = one(c, &path, ws, owner, secrets) {
            if out.iter().any(|o| o.name == w.name) {
                c.error(
                    &format!("{path}.name"),
                    format!("workspace `{}` is defined twice", w.name),
                    None,
                );
                continue;
            }
            out.push(w);
        }
    }
    out
}

fn one(
    c: &mut Checker<'_>,
    path: &str,
    raw: RawWorkspace,
    owner: Option<&str>,
    secrets: &[Secret],
) -> Option<Workspace> {
    let before = c.errors.len();
    let at = |k: &str| format!("{path}.{k}");
    let name = match raw.name {
        None => {
            c.error(path, "workspace has no `name`".into(), None);
            None
        }
        Some(n) if !is_label(&n) => {
            c.error(
                &at("name"),
                format!("`{n}` is not a valid workspace name"),
                Some(label_hint(&n)),
            );
            None
        }
        Some(n) => Some(n),
    };
    let owner = match owner {
        Some(o) => o.to_owned(),
        None => {
            c.error(
                path,
                "cannot tell whose workspace this is: the client has no DEVENV_USER or USER".into(),
                Some("set DEVENV_USER to your user name".into()),
            );
            String::new()
        }
    };
    if let Some(n) = &name {
        let full = format!("ws-{n}-{owner}");
        if full.len() > MAX_STATEFULSET_NAME {
            c.error(
                &at("name"),
                format!(
                    "the workspace's object name `{full}` is longer than {MAX_STATEFULSET_NAME} characters"
                ),
                Some("shorten the workspace name, or set a shorter DEVENV_USER".into()),
            );
        }
    }
    let image = match raw.image.filter(|i| !i.trim().is_empty()) {
        Some(i) => i,
        None => {
            c.error(
                path,
                "workspace has no `image`".into(),
                Some("e.g. `image: mcr.microsoft.com/devcontainers/base:debian`".into()),
            );
            String::new()
        }
    };
    let command = raw.command.map(|s| s.0).unwrap_or_default();
    if command.first().is_some_and(String::is_empty) {
        c.error(
            &at("command"),
            "the command starts with an empty program".into(),
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
                if !is_quantity(&v.0) {
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
    let mut volumes: Vec<WorkspaceVolume> = DEFAULT_VOLUMES
        .iter()
        .map(|(n, p, s)| WorkspaceVolume {
            name: (*n).to_owned(),
            mount_path: (*p).to_owned(),
            size: (*s).to_owned(),
            storage_class: None,
        })
        .collect();
    let mut seen = Vec::new();
    for (j, v) in raw.volumes.unwrap_or_default().into_iter().enumerate() {
        let vpath = at(&format!("volumes[{j}]"));
        let Some(vname) = v.name else {
            c.error(&vpath, "volume has no `name`".into(), None);
            continue;
        };
        if !is_label(&vname) {
            c.error(
                &format!("{vpath}.name"),
                format!("`{vname}` is not a valid volume name"),
                Some(label_hint(&vname)),
            );
            continue;
        }
        if seen.contains(&vname) {
            c.error(
                &format!("{vpath}.name"),
                format!("volume `{vname}` is listed twice"),
                None,
            );
            continue;
        }
        seen.push(vname.clone());
        if let Some(size) = &v.size {
            if !is_quantity(&size.0) || size.0.trim().is_empty() {
                c.error(
                    &format!("{vpath}.size"),
                    format!("`{}` is not a size", size.0),
                    Some("e.g. `size: 10Gi`".into()),
                );
            }
        }
        if let Some(p) = &v.mount_path {
            if !p.starts_with('/') {
                c.error(
                    &format!("{vpath}.mountPath"),
                    format!("`{p}` is not an absolute path"),
                    Some("e.g. `mountPath: /workspace`".into()),
                );
            }
        }
        match volumes.iter_mut().find(|d| d.name == vname) {
            Some(d) => {
                if let Some(p) = v.mount_path {
                    d.mount_path = p;
                }
                if let Some(s) = v.size {
                    d.size = s.0;
                }
                d.storage_class = v.storage_class;
            }
            None => {
                let Some(mount_path) = v.mount_path else {
                    c.error(
                        &vpath,
                        format!("volume `{vname}` has no `mountPath`"),
                        Some("only workspace, history and config have a default path".into()),
                    );
                    continue;
                };
                volumes.push(WorkspaceVolume {
                    name: vname,
                    mount_path,
                    size: v.size.map_or_else(|| "1Gi".to_owned(), |s| s.0),
                    storage_class: v.storage_class,
                });
            }
        }
    }
    for (j, v) in volumes.iter().enumerate() {
        if volumes[..j].iter().any(|o| o.mount_path == v.mount_path) {
            c.error(
                &at("volumes"),
                format!("two volumes are mounted at `{}`", v.mount_path),
                None,
            );
        }
    }
    let ws_secrets = raw.secrets.map(|s| s.0).unwrap_or_default();
    for (j, s) in ws_secrets.iter().enumerate() {
        if !secrets.iter().any(|d| &d.name == s) {
            let known: Vec<&str> = secrets.iter().map(|d| d.name.as_str()).collect();
            c.error(
                &at(&format!("secrets[{j}]")),
                format!("unknown secret `{s}`"),
                Some(if known.is_empty() {
                    "define it under `spec.secrets`".into()
                } else {
                    format!("defined secrets: {}", known.join(", "))
                }),
            );
        }
    }
    let env: BTreeMap<String, String> = raw
        .env
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for k in env.keys() {
        let valid = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            c.error(
                &at(&format!("env.{k}")),
                format!("`{k}` is not an environment variable name"),
                Some("letters, digits and `_`, not starting with a digit".into()),
            );
        }
    }
    let ports = raw.ports.unwrap_or_default();
    for (j, p) in ports.iter().enumerate() {
        if *p == 0 || ports[..j].contains(p) {
            c.error(
                &at(&format!("ports[{j}]")),
                format!("port {p} is zero or listed twice"),
                None,
            );
        }
    }
    let idle_timeout = match raw.idle_timeout {
        None => None,
        // Never stopped for idleness (the same as leaving the key out, said explicitly).
        Some(t) if t.0.trim() == "none" => None,
        Some(t) => match parse_duration(&t.0) {
            Some(d) if d >= Duration::from_secs(1) => Some(d),
            _ => {
                c.error(
                    &at("idleTimeout"),
                    format!("`{}` is not a duration of a second or more", t.0),
                    Some("e.g. `idleTimeout: 2h`, `30m`, `90s`, or `none`".into()),
                );
                None
            }
        },
    };
    let init = raw.init.map(|s| s.0).unwrap_or_default();
    for (j, cmd) in init.iter().enumerate() {
        if cmd.trim().is_empty() {
            c.error(
                &at(&format!("init[{j}]")),
                "the command is empty".into(),
                None,
            );
        }
    }
    let sync = sync_rules(c, path, raw.sync.unwrap_or_default(), &volumes);
    if c.errors.len() != before {
        return None;
    }
    Some(Workspace {
        name: name?,
        owner,
        image,
        command,
        resources,
        volumes,
        secrets: ws_secrets,
        env,
        ports,
        idle_timeout,
        init,
        read_only_root_filesystem: raw.read_only_root_filesystem.unwrap_or(true),
        cpu_active_millicores: raw.cpu_active_millicores.unwrap_or(50),
        sync,
    })
}

/// `sync`: like a service's `dev.sync` rules, with `from` required (a workspace has
/// no `source`) and `to` inside one of the workspace's volumes: anywhere else is the
/// read-only root filesystem, or gone at the next stop.
fn sync_rules(
    c: &mut Checker<'_>,
    path: &str,
    raw: Vec<RawWorkspaceSync>,
    volumes: &[WorkspaceVolume],
) -> Vec<SyncRule> {
    let mut out = Vec::new();
    for (i, rule) in raw.into_iter().enumerate() {
        let at = format!("{path}.sync[{i}]");
        let Some(to) = rule.to else {
            c.error(
                &at,
                "sync rule has no `to`".into(),
                Some("e.g. `to: /workspace/src`".into()),
            );
            continue;
        };
        if let Some(why) = crate::sync::refused_target(&to) {
            c.error(&format!("{at}.to"), why, None);
            continue;
        }
        let to_dir = to.trim_end_matches('/');
        if let Some(v) = volumes
            .iter()
            .find(|v| v.mount_path.trim_end_matches('/') == to_dir)
        {
            c.error(
                &format!("{at}.to"),
                format!(
                    "`{to}` is the root of volume `{}`: a sync deletes what the local directory lacks, the rest of your work in it included",
                    v.name
                ),
                Some(format!("sync into a directory of its own, e.g. `{to_dir}/src`")),
            );
            continue;
        }
        let inside = |mount: &str| {
            to_dir
                .strip_prefix(mount.trim_end_matches('/'))
                .is_some_and(|rest| rest.starts_with('/'))
        };
        if !volumes.iter().any(|v| inside(&v.mount_path)) {
            let mounts: Vec<&str> = volumes.iter().map(|v| v.mount_path.as_str()).collect();
            c.error(
                &format!("{at}.to"),
                format!("`{to}` is not inside one of the workspace's volumes"),
                Some(format!(
                    "sync into a volume, so the files outlive the pod: {}",
                    mounts.join(", ")
                )),
            );
            continue;
        }
        let Some(written) = rule.from else {
            c.error(
                &at,
                "sync rule has no `from`".into(),
                Some("e.g. `from: ./src` (relative to the project directory)".into()),
            );
            continue;
        };
        let from = c.resolve(&written);
        if !from.is_dir() {
            c.error(
                &format!("{at}.from"),
                format!(
                    "sync source `{written}` is not a directory ({}); relative paths start at the project directory",
                    from.display()
                ),
                Some("create it or correct the path".into()),
            );
            continue;
        }
        out.push(SyncRule {
            from,
            to,
            exclude: rule.exclude.map(|e| e.0).unwrap_or_default(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_made_a_label() {
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            owner_of(&vars(&[("USER", "Ann.Lee")])),
            Some("ann-lee".into())
        );
        assert_eq!(
            owner_of(&vars(&[("USER", "ann"), ("DEVENV_USER", "bob")])),
            Some("bob".into())
        );
        assert_eq!(owner_of(&vars(&[("USER", "__")])), None);
        assert_eq!(owner_of(&vars(&[])), None);
    }

    #[test]
    fn durations_take_units_or_seconds() {
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("soon"), None);
    }
}
