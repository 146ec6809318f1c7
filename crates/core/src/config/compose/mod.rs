//! `devenv init` from a compose file: its services become devenv services (containers on
//! the local engine, or presets when asked), and whatever has no equivalent is listed in
//! a report (printed by `init`, and as comments at the top of the written config), never
//! dropped silently.
//!
//! The file is read like a devenv config (bounded, every node located, `yaml::parse`);
//! each service key is then deserialized into its typed struct (`model.rs`) on its own, so
//! a malformed key is an error at its line. Variables are kept as devenv references
//! (`interp.rs`) where the value is a string devenv interpolates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::names::{is_label, to_label};
use super::yaml::{self, Entry, Node, Value};
use super::{dotenv, limits, ConfigError, Origin};

mod emit;
mod interp;
mod model;
mod ports;
#[cfg(test)]
mod tests;

use emit::{Out, OutBuild, OutProbe, OutVolume};
use interp::{Interp, Kept};
use model::*;

/// The file names compose looks for, in its order.
pub const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// The compose file of `dir`, if it has one.
pub fn find(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// How to convert.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// postgres and redis images become presets (`type: postgresql|redis`).
    pub presets: bool,
    /// The presets whose server this machine has: they run as local processes; the
    /// others in a container of the compose file's image (`runtime: container`).
    pub local_servers: Vec<crate::config::Preset>,
}

/// One thing of the compose file that was not converted as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `compose.yaml:12`.
    pub at: String,
    /// The line (0: the file as a whole), to list notes in file order.
    pub line: u32,
    /// `services.web.privileged`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.key, self.message)
    }
}

/// The converted config.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub yaml: String,
    pub report: Vec<Note>,
    /// Services (devenv names) whose image could be a preset.
    pub preset_candidates: Vec<String>,
    pub services: usize,
}

/// Converts `file` for the project in `project_dir` (where `.devenv/` goes).
pub fn convert(
    file: &Path,
    project_dir: &Path,
    process: &BTreeMap<String, String>,
    opts: &Options,
) -> Result<Conversion, ConfigError> {
    let read_error = |e: limits::ReadError| ConfigError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        key: String::new(),
        hint: matches!(e, limits::ReadError::TooLarge(..)).then(limits::size_hint),
        message: e.to_string(),
    };
    let text = limits::read_text(file).map_err(read_error)?;
    let shown = shown_path(file, project_dir);
    let mut tree = yaml::parse(Path::new(&shown), &text)?;
    merge_keys(&mut tree);
    let compose_dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| project_dir.to_path_buf());
    let dotenv = dotenv::read(&compose_dir.join(".env"), process)?;
    let mut c = Converter {
        interp: Interp {
            process,
            dotenv: &dotenv.vars,
        },
        kept: Kept::default(),
        notes: Vec::new(),
        compose_dir,
        project_dir: project_dir.to_path_buf(),
        volumes: Vec::new(),
        opts: opts.clone(),
        candidates: Vec::new(),
    };
    c.convert(&tree, &shown)
}

fn shown_path(file: &Path, project_dir: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (f, d) = (abs(file), abs(project_dir));
    match f.strip_prefix(&d) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => f.display().to_string(),
    }
}

fn line_of(origin: &Origin) -> String {
    match origin {
        Origin::File { file, line, .. } => format!("{}:{line}", file.display()),
        other => other.to_string(),
    }
}

fn located(origin: &Origin, key: &str, message: String, hint: Option<String>) -> ConfigError {
    ConfigError::at(origin, key, message, hint)
}

/// Deserializes one entry's value into `T`, or a located error saying what was expected.
fn field<T: DeserializeOwned>(e: &Entry, key: &str, expected: &str) -> Result<T, ConfigError> {
    serde_yaml::from_value(e.value.to_serde()).map_err(|err| {
        // serde's own words for a struct (`unknown variant`, `missing field`) help; its
        // untagged-enum message does not.
        let why = err.to_string();
        let message = if why.contains("did not match any variant") {
            format!("expected {expected}, found {}", e.value.kind_name())
        } else {
            format!("expected {expected}: {why}")
        };
        located(&e.value.origin, key, message, None)
    })
}

struct Converter<'a> {
    interp: Interp<'a>,
    kept: Kept,
    notes: Vec<Note>,
    compose_dir: PathBuf,
    project_dir: PathBuf,
    /// `spec.volumes`, in first-use order.
    volumes: Vec<OutVolume>,
    opts: Options,
    candidates: Vec<String>,
}

/// Why a service key has no equivalent, for the keys people ask about.
fn unsupported_why(key: &str) -> &'static str {
    match key {
        "container_name" => "devenv names containers itself (labelled with the environment and service); services reach each other by service name",
        "hostname" | "domainname" => "a container is reached by its service name on the environment's network",
        "links" | "external_links" => "all services of an environment share one network and reach each other by service name",
        "network_mode" => "devenv attaches every container to the environment's network",
        "deploy" => "replicas and resources apply to Kubernetes services (`replicas`, `resources`) and cannot be set on a container service",
        "secrets" | "configs" => "compose secrets/configs are not mounted; declare `spec.secrets` and list them in the service's `secrets:` (they arrive as environment variables)",
        "extends" => "not followed: copy the keys of the extended service in",
        "working_dir" => "a container runs in its image's WORKDIR; set it in the Dockerfile",
        "entrypoint" => "devenv keeps the image's ENTRYPOINT; fold this one into `command` or the Dockerfile",
        "cap_add" | "cap_drop" | "privileged" | "security_opt" | "devices" | "userns_mode" | "pid" | "ipc" => {
            "devenv does not change a container's privileges"
        }
        "user" => "the image's USER applies; set it in the Dockerfile",
        "labels" => "devenv sets its own labels on containers",
        "logging" => "logs go to devenv's log hub (`devenv logs`)",
        "stop_signal" | "stop_grace_period" => "devenv stops containers with the engine's default signal and grace period",
        "init" | "tty" | "stdin_open" => "no equivalent for a container service",
        "ulimits" | "sysctls" | "shm_size" | "mem_limit" | "memswap_limit" | "cpus" | "cpu_shares" | "mem_reservation" | "pids_limit" => {
            "resource settings apply to Kubernetes services only"
        }
        "extra_hosts" | "dns" | "dns_search" | "dns_opt" | "mac_address" => "the environment's network has no per-container DNS or host entries",
        "platform" | "pull_policy" => "devenv uses the image the engine has or pulls it for the engine's platform",
        "scale" => "one container runs per service",
        _ => "no equivalent in devenv",
    }
}

impl Converter<'_> {
    fn note(&mut self, origin: &Origin, key: &str, message: impl Into<String>) {
        let line = match origin {
            Origin::File { line, .. } => *line,
            _ => 0,
        };
        self.notes.push(Note {
            line,
            at: line_of(origin),
            key: key.to_owned(),
            message: message.into().replace('\n', " "),
        });
    }

    fn keep(&mut self, node: &Node, key: &str, text: &str) -> Result<String, ConfigError> {
        self.interp.keep(text, &mut self.kept).map_err(|why| {
            located(
                &node.origin,
                key,
                why,
                Some("write `$$` for a literal `$`".into()),
            )
        })
    }

    fn resolve(&self, node: &Node, key: &str, text: &str) -> Result<String, ConfigError> {
        self.interp.resolve(text).map_err(|why| {
            located(
                &node.origin,
                key,
                why,
                Some("write `$$` for a literal `$`".into()),
            )
        })
    }

    /// A path of the compose file as devenv writes it: relative to the project
    /// directory when it is inside it.
    fn path(&self, written: &str) -> String {
        let joined = self.compose_dir.join(written);
        let abs = std::path::absolute(&joined).unwrap_or(joined);
        let normal: PathBuf = abs.components().fold(PathBuf::new(), |mut p, c| {
            match c {
                std::path::Component::ParentDir => {
                    p.pop();
                }
                std::path::Component::CurDir => {}
                other => p.push(other),
            }
            p
        });
        let project = std::path::absolute(&self.project_dir).unwrap_or(self.project_dir.clone());
        match normal.strip_prefix(&project) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => format!("./{}", rel.display()),
            Err(_) => normal.display().to_string(),
        }
    }

    fn add_volume(&mut self, v: OutVolume) -> String {
        if !self.volumes.iter().any(|x| x.name == v.name) {
            self.volumes.push(v.clone());
        }
        v.name
    }

    /// A volume name nobody uses yet, from `base`.
    fn fresh_volume(&self, base: &str) -> String {
        let base = to_label(base);
        let mut n = 1;
        loop {
            let name = format!("{base}-{n}");
            if !self.volumes.iter().any(|v| v.name == name) {
                return name;
            }
            n += 1;
        }
    }

    fn convert(&mut self, tree: &Node, shown: &str) -> Result<Conversion, ConfigError> {
        let Value::Map(top) = &tree.value else {
            unreachable!("yaml::parse returns a mapping")
        };
        let mut project_name = None;
        let mut services_node = None;
        let mut top_volumes: BTreeMap<String, (Origin, Option<serde_yaml::Value>)> =
            BTreeMap::new();
        for e in top {
            match e.key.as_str() {
                "services" => services_node = Some(&e.value),
                "name" => project_name = e.value.as_str().map(str::to_owned),
                "version" => self.note(&e.key_origin, "version", "obsolete in compose; ignored"),
                "volumes" => {
                    if let Value::Map(vols) = &e.value.value {
                        for v in vols {
                            let opts = match &v.value.value {
                                Value::Null => None,
                                Value::Map(m) if m.is_empty() => None,
                                _ => Some(v.value.to_serde()),
                            };
                            top_volumes.insert(v.key.clone(), (v.key_origin.clone(), opts));
                        }
                    } else if !matches!(e.value.value, Value::Null) {
                        return Err(located(
                            &e.value.origin,
                            "volumes",
                            format!("expected a mapping of volume names, found {}", e.value.kind_name()),
                            None,
                        ));
                    }
                }
                "networks" => {
                    if let Value::Map(nets) = &e.value.value {
                        for n in nets {
                            let plain = matches!(&n.value.value, Value::Null)
                                || matches!(&n.value.value, Value::Map(m) if m.is_empty());
                            if n.key != "default" || !plain {
                                self.note(
                                    &n.key_origin,
                                    &format!("networks.{}", n.key),
                                    "not created: devenv puts all services of an environment on one network, where they reach each other by service name",
                                );
                            }
                        }
                    }
                }
                key if key.starts_with("x-") => self.note(
                    &e.key_origin,
                    key,
                    "extension fields are not converted (anchors that use them were expanded where referenced)",
                ),
                "secrets" | "configs" => self.note(
                    &e.key_origin,
                    &e.key,
                    "not converted: declare `spec.secrets` (providers: env, file, command, ...) and list them in a service's `secrets:`",
                ),
                "include" => self.note(&e.key_origin, "include", "included files are not followed: convert each, or merge them first (`docker compose config`)"),
                other => self.note(&e.key_origin, other, "no equivalent in devenv"),
            }
        }
        let Some(services_node) = services_node else {
            return Err(located(
                &tree.origin,
                "services",
                "the compose file has no `services`".into(),
                Some("is this a compose file?".into()),
            ));
        };
        let Value::Map(services) = &services_node.value else {
            return Err(located(
                &services_node.origin,
                "services",
                format!(
                    "expected a mapping of services, found {}",
                    services_node.kind_name()
                ),
                None,
            ));
        };

        // devenv names (DNS labels) of the compose services, unique.
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut taken = BTreeSet::new();
        for e in services {
            let mut name = to_label(&e.key);
            if name.is_empty() {
                name = "service".into();
            }
            let mut unique = name.clone();
            let mut n = 2;
            while !taken.insert(unique.clone()) {
                unique = format!("{name}-{n}");
                n += 1;
            }
            if unique != e.key {
                self.note(
                    &e.key_origin,
                    &format!("services.{}", e.key),
                    format!("renamed to `{unique}` (devenv service names are DNS labels); other services reach it by that name"),
                );
            }
            names.insert(e.key.clone(), unique);
        }

        let project = project_name
            .as_deref()
            .map(to_label)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| super::init::project_name(&self.project_dir));

        let mut outs = Vec::new();
        let mut completed: BTreeSet<String> = BTreeSet::new();
        for e in services {
            let name = names[&e.key].clone();
            if let Some(out) = self.service(e, &name, &names, &top_volumes, &mut completed)? {
                outs.push(out);
            }
        }
        // A dependency others wait to complete (`service_completed_successfully`) is a
        // one-shot task.
        for out in &mut outs {
            if completed.contains(&out.name) {
                out.oneshot = true;
                if out.restart == Some("always") {
                    out.restart = Some("on-failure");
                    out.comments.push(
                        "restart: always became on-failure: a one-shot task that succeeded is done"
                            .into(),
                    );
                }
            }
        }
        // Volumes declared with options (drivers, external, names).
        for (name, (origin, opts)) in &top_volumes {
            if let Some(serde_yaml::Value::Mapping(m)) = opts {
                let keys: Vec<String> = m.keys().filter_map(scalar_text).collect();
                self.note(
                    origin,
                    &format!("volumes.{name}"),
                    format!(
                        "{} not converted: devenv's volumes are plain named volumes of the engine (kept across `down`, removed by `down --volumes`)",
                        keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        for name in std::mem::take(&mut self.kept.unset) {
            self.notes.push(Note {
                line: u32::MAX,
                at: shown.to_owned(),
                key: format!("${{{name}}}"),
                message: format!("set neither in the environment nor in .env: written as `${{{name}:-}}` (empty, as compose makes it)"),
            });
        }
        for name in std::mem::take(&mut self.kept.baked) {
            self.notes.push(Note {
                line: u32::MAX,
                at: shown.to_owned(),
                key: format!("${{{name}}}"),
                message: "a reference devenv cannot express (`:+`, `+`, or a default holding a variable): its value now was written".into(),
            });
        }
        self.notes.sort_by_key(|n| n.line);
        let yaml = emit::config(&project, shown, &outs, &self.volumes, &self.notes);
        Ok(Conversion {
            yaml,
            report: self.notes.clone(),
            preset_candidates: self.candidates.clone(),
            services: outs.len(),
        })
    }

    #[allow(clippy::too_many_lines, reason = "one match arm per compose key")]
    fn service(
        &mut self,
        svc: &Entry,
        name: &str,
        names: &BTreeMap<String, String>,
        top_volumes: &BTreeMap<String, (Origin, Option<serde_yaml::Value>)>,
        completed: &mut BTreeSet<String>,
    ) -> Result<Option<Out>, ConfigError> {
        let base = format!("services.{}", svc.key);
        let Value::Map(entries) = &svc.value.value else {
            return Err(located(
                &svc.value.origin,
                &base,
                format!(
                    "expected a mapping of service keys, found {}",
                    svc.value.kind_name()
                ),
                None,
            ));
        };
        let mut out = Out {
            name: name.to_owned(),
            ..Out::default()
        };
        let mut healthcheck = None;
        let mut command = None;
        for e in entries {
            let key = format!("{base}.{}", e.key);
            match e.key.as_str() {
                "image" => {
                    let image: String = field(e, &key, "an image name")?;
                    let resolved = self.resolve(&e.value, &key, &image)?;
                    if let Some(preset) = preset_of(&resolved) {
                        out.preset_candidate = Some(preset);
                    }
                    out.image = Some(self.keep(&e.value, &key, &image)?);
                }
                "build" => {
                    let spec: BuildSpec =
                        field(e, &key, "a path or `{context, dockerfile, args, target}`")?;
                    let mut b = OutBuild::default();
                    match spec {
                        BuildSpec::Context(c) => {
                            b.context = self.path(&self.resolve(&e.value, &key, &c)?)
                        }
                        BuildSpec::Full(full) => {
                            let context = full.context.as_deref().unwrap_or(".");
                            b.context = self.path(&self.resolve(&e.value, &key, context)?);
                            if let Some(d) = &full.dockerfile {
                                // Relative to the context in compose.
                                let ctx_rel = context.trim_end_matches('/');
                                b.dockerfile = Some(self.path(&format!("{ctx_rel}/{d}")));
                            }
                            if let Some(args) = &full.args {
                                for (k, v) in args
                                    .pairs()
                                    .map_err(|w| located(&e.value.origin, &key, w, None))?
                                {
                                    let v = match v {
                                        Some(v) => self.keep(&e.value, &key, &v)?,
                                        None => self.keep(&e.value, &key, &format!("${{{k}}}"))?,
                                    };
                                    b.args.push((k, v));
                                }
                            }
                            b.target = full.target.clone();
                            for k in full.other.keys().filter_map(scalar_text) {
                                self.note(
                                    &e.key_origin,
                                    &format!("{key}.{k}"),
                                    "build option not converted",
                                );
                            }
                        }
                    }
                    out.build = Some(b);
                }
                "command" => {
                    let spec: CmdSpec = field(e, &key, "a command line or a list of arguments")?;
                    command = Some(self.argv(&e.value, &key, spec)?);
                }
                "ports" | "expose" => {
                    let specs: Vec<PortSpec> = field(
                        e,
                        &key,
                        "a list of ports (`8080:80` or `{target, published}`)",
                    )?;
                    for spec in specs {
                        self.port(e, &key, spec, &mut out)?;
                    }
                }
                "environment" => {
                    let kv: KeyValues = field(e, &key, "a mapping or a list of `KEY=value`")?;
                    for (k, v) in kv
                        .pairs()
                        .map_err(|w| located(&e.value.origin, &key, w, None))?
                    {
                        let v = match v {
                            Some(v) => self.keep(&e.value, &key, &v)?,
                            // The key alone: compose takes it from the environment.
                            None => format!("${{{k}:-}}"),
                        };
                        out.env.retain(|(x, _)| *x != k);
                        out.env.push((k, v));
                    }
                }
                "env_file" => {
                    let files: EnvFiles = field(e, &key, "a path or a list of paths")?;
                    let list = match files {
                        EnvFiles::One(p) => vec![(p, true)],
                        EnvFiles::Many(v) => v
                            .into_iter()
                            .map(|f| match f {
                                EnvFileEntry::Path(p) => (p, true),
                                EnvFileEntry::Full { path, required } => {
                                    (path, required.unwrap_or(true))
                                }
                            })
                            .collect(),
                    };
                    for (p, required) in list {
                        let p = self.resolve(&e.value, &key, &p)?;
                        let written = self.path(&p);
                        if self.project_dir.join(&written).is_file()
                            || Path::new(&written).is_file()
                        {
                            out.env_files.push(written);
                        } else {
                            let why = if required {
                                "does not exist: left out (devenv refuses a missing envFile); create it and add it to `envFile`"
                            } else {
                                "does not exist (required: false): left out"
                            };
                            self.note(&e.key_origin, &key, format!("`{p}` {why}"));
                        }
                    }
                }
                "depends_on" => {
                    let deps: DependsOn = field(
                        e,
                        &key,
                        "a list of services or a mapping of service to `{condition}`",
                    )?;
                    let list: Vec<(String, DependsLong)> = match deps {
                        DependsOn::List(v) => {
                            v.into_iter().map(|d| (d, DependsLong::default())).collect()
                        }
                        DependsOn::Map(m) => {
                            let mut v = Vec::new();
                            for (k, opts) in m {
                                let k = scalar_text(&k).unwrap_or_default();
                                let opts: DependsLong = match opts {
                                    serde_yaml::Value::Null => DependsLong::default(),
                                    other => serde_yaml::from_value(other).map_err(|w| {
                                        located(
                                            &e.value.origin,
                                            &format!("{key}.{k}"),
                                            format!(
                                                "expected `{{condition, restart, required}}`: {w}"
                                            ),
                                            None,
                                        )
                                    })?,
                                };
                                v.push((k, opts));
                            }
                            v
                        }
                    };
                    for (dep, opts) in list {
                        let Some(dep_name) = names.get(&dep) else {
                            self.note(
                                &e.key_origin,
                                &key,
                                format!(
                                    "`{dep}` is not a service of this file: dependency left out"
                                ),
                            );
                            continue;
                        };
                        match opts.condition.as_deref() {
                            None | Some("service_started") | Some("service_healthy") => {}
                            Some("service_completed_successfully") => {
                                completed.insert(dep_name.clone());
                            }
                            Some(other) => self.note(&e.key_origin, &format!("{key}.{dep}.condition"), format!("unknown condition `{other}`: devenv waits for `{dep_name}` to be ready")),
                        }
                        if opts.required == Some(false) {
                            self.note(&e.key_origin, &format!("{key}.{dep}.required"), "`required: false` has no equivalent: devenv starts every dependency");
                        }
                        out.deps
                            .push((dep_name.clone(), opts.restart == Some(true)));
                    }
                }
                "healthcheck" => {
                    let h: Healthcheck = field(
                        e,
                        &key,
                        "`{test, interval, timeout, retries, start_period}`",
                    )?;
                    healthcheck = Some((e, h));
                }
                "volumes" => {
                    let specs: Vec<VolumeSpec> = field(
                        e,
                        &key,
                        "a list of `SOURCE:TARGET[:MODE]` or `{type, source, target}`",
                    )?;
                    for spec in specs {
                        self.volume(e, &key, name, spec, top_volumes, &mut out)?;
                    }
                }
                "tmpfs" => {
                    let paths: OneOrMany = field(e, &key, "a path or a list of paths")?;
                    for p in paths.items() {
                        let (path, opts) = p.split_once(':').unwrap_or((&p, ""));
                        let size = opts
                            .split(',')
                            .find_map(|o| o.strip_prefix("size="))
                            .map(size_quantity);
                        let vol = self.fresh_volume(&format!("{name}-tmpfs"));
                        let vol = self.add_volume(OutVolume {
                            name: vol,
                            kind: "tmpfs",
                            size,
                        });
                        out.volumes.push(format!("{vol}:{path}"));
                    }
                }
                "profiles" => {
                    let profiles: Vec<String> = field(e, &key, "a list of profile names")?;
                    for p in profiles {
                        let label = to_label(&p);
                        if label != p {
                            self.note(&e.key_origin, &key, format!("profile `{p}` renamed to `{label}` (profile names are DNS labels): `devenv up --profile {label}`"));
                        }
                        if is_label(&label) && !out.profiles.contains(&label) {
                            out.profiles.push(label);
                        }
                    }
                }
                "restart" => {
                    let r: String = field(
                        e,
                        &key,
                        "`no`, `always`, `on-failure[:N]` or `unless-stopped`",
                    )?;
                    out.restart = match r.as_str() {
                        "no" | "\"no\"" => None,
                        "always" => Some("always"),
                        "unless-stopped" => {
                            out.comments
                                .push("restart: unless-stopped became always".into());
                            Some("always")
                        }
                        "on-failure" => Some("on-failure"),
                        s if s.starts_with("on-failure:") => {
                            self.note(&e.key_origin, &key, "the retry count is not kept: devenv retries with a growing back-off");
                            Some("on-failure")
                        }
                        other => {
                            return Err(located(
                                &e.value.origin,
                                &key,
                                format!("unknown restart policy `{other}`"),
                                Some("`no`, `always`, `on-failure[:N]` or `unless-stopped`".into()),
                            ));
                        }
                    };
                }
                "networks" => {
                    let nets: Networks = field(e, &key, "a list or mapping of networks")?;
                    let others: Vec<String> = nets
                        .names()
                        .into_iter()
                        .filter(|n| n != "default")
                        .collect();
                    if !others.is_empty() {
                        self.note(&e.key_origin, &key, format!("{} not kept: devenv puts all services of an environment on one network", others.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")));
                    }
                }
                other if other.starts_with("x-") => {
                    self.note(&e.key_origin, &key, "extension field not converted")
                }
                other => self.note(&e.key_origin, &key, unsupported_why(other)),
            }
        }
        if let Some((e, h)) = healthcheck {
            out.readiness = self.healthcheck(e, &format!("{base}.healthcheck"), h)?;
        }
        out.command = command;

        if out.image.is_none() && out.build.is_none() {
            self.note(
                &svc.key_origin,
                &base,
                "has neither `image` nor `build`: not converted",
            );
            return Ok(None);
        }
        if let Some(preset) = out.preset_candidate {
            self.candidates.push(name.to_owned());
            if self.opts.presets {
                self.as_preset(svc, &base, preset, &mut out);
                return Ok(Some(out));
            }
        }
        if out.build.is_some() {
            if let Some(image) = out.image.take() {
                self.note(
                    &svc.key_origin,
                    &format!("{base}.image"),
                    format!("`{image}` is not kept: the service is built, and devenv tags its builds itself (devenv.local/ENV-SERVICE:HASH of the context)"),
                );
            }
        }
        out.container = true;
        Ok(Some(out))
    }

    /// A postgres or redis service as a preset: the preset brings its server, port,
    /// probe and data directory; the compose keys it replaces are reported.
    fn as_preset(&mut self, svc: &Entry, base: &str, preset: &'static str, out: &mut Out) {
        let kind = if preset == "postgresql" {
            crate::config::Preset::Postgresql
        } else {
            crate::config::Preset::Redis
        };
        if !self.opts.local_servers.contains(&kind) {
            self.as_container_preset(svc, base, preset, out);
            return;
        }
        let contract: &[&str] = if preset == "postgresql" {
            &[
                super::preset::vars::POSTGRES_USER,
                super::preset::vars::POSTGRES_PASSWORD,
                super::preset::vars::POSTGRES_DB,
                super::preset::vars::POSTGRES_INITDB_ARGS,
                super::preset::vars::POSTGRES_HOST_AUTH_METHOD,
            ]
        } else {
            &[super::preset::vars::REDIS_PASSWORD]
        };
        let at = &svc.key_origin;
        let dropped: Vec<String> = out
            .env
            .iter()
            .filter(|(k, _)| !contract.contains(&k.as_str()))
            .map(|(k, _)| k.clone())
            .collect();
        out.env.retain(|(k, _)| contract.contains(&k.as_str()));
        let mut left = Vec::new();
        if !dropped.is_empty() {
            left.push(format!("environment {}", dropped.join(", ")));
        }
        if out.command.take().is_some() {
            left.push("command".into());
        }
        if !out.volumes.is_empty() {
            out.volumes.clear();
            left.push("volumes (the preset keeps its data under devenv's state dir; `down --volumes` removes it)".into());
        }
        if out.readiness.take().is_some() {
            left.push("healthcheck (the preset has its own probe)".into());
        }
        let default_port: u16 = if preset == "postgresql" { 5432 } else { 6379 };
        // The server listens where the compose file published its port, so clients on
        // the host keep their address (`5433:5432` -> the preset listens on 5433).
        let published: Vec<Option<u16>> = out
            .forward
            .iter()
            .filter_map(|f| f.rsplit_once(':'))
            .filter(|(_, target)| target.parse() == Ok(default_port))
            .map(|(host, _)| host.parse().ok())
            .collect();
        let listen = match published.as_slice() {
            [Some(port)] => *port,
            _ => default_port,
        };
        let kept = matches!(published.as_slice(), [Some(_)]) && out.forward.len() == 1;
        if !out.forward.is_empty() && !kept {
            left.push(format!("ports (the preset listens on {listen})"));
        }
        out.ports.clear();
        if listen != default_port {
            out.ports.push(listen);
        }
        out.forward.clear();
        out.env_files.clear();
        out.image = None;
        out.build = None;
        out.preset = Some(preset);
        self.note(
            at,
            base,
            format!(
                "became the `{preset}` preset (local binaries on PATH){}",
                if left.is_empty() {
                    String::new()
                } else {
                    format!("; not kept: {}", left.join("; "))
                }
            ),
        );
    }

    /// A postgres or redis service as a preset in a container, for a machine without
    /// the server: the compose file's image, environment, ports and volumes are kept
    /// (the image reads the same contract); the preset's probe replaces a healthcheck.
    fn as_container_preset(
        &mut self,
        svc: &Entry,
        base: &str,
        preset: &'static str,
        out: &mut Out,
    ) {
        let mut left = Vec::new();
        if out.readiness.take().is_some() {
            left.push("healthcheck (the preset has its own probe)");
        }
        if out.build.take().is_some() {
            left.push("build (a preset runs its image)");
        }
        out.preset = Some(preset);
        out.container = true;
        let server = if preset == "postgresql" {
            "postgres/initdb"
        } else {
            "redis-server"
        };
        self.note(
            &svc.key_origin,
            base,
            format!(
                "became the `{preset}` preset in a container (`runtime: container`, its image kept): no local {server} on PATH{}",
                if left.is_empty() {
                    String::new()
                } else {
                    format!("; not kept: {}", left.join("; "))
                }
            ),
        );
    }

    fn argv(&mut self, node: &Node, key: &str, spec: CmdSpec) -> Result<Vec<String>, ConfigError> {
        let words = match spec {
            CmdSpec::Line(line) => {
                split_words(&line).map_err(|w| located(&node.origin, key, w, None))?
            }
            CmdSpec::Argv(v) => v.iter().map(Scalar::text).collect(),
        };
        words.iter().map(|w| self.keep(node, key, w)).collect()
    }

    fn healthcheck(
        &mut self,
        e: &Entry,
        key: &str,
        h: Healthcheck,
    ) -> Result<Option<OutProbe>, ConfigError> {
        if h.disable == Some(true) {
            self.note(&e.key_origin, key, "`disable: true`: no readiness probe written; devenv still uses the image's HEALTHCHECK if it has one");
            return Ok(None);
        }
        let Some(test) = h.test else {
            self.note(
                &e.key_origin,
                key,
                "no `test`: the image's HEALTHCHECK gates readiness, as in compose",
            );
            return Ok(None);
        };
        let command = match test {
            CmdSpec::Line(s) => emit::Cmd::Shell(self.keep(&e.value, key, &s)?),
            CmdSpec::Argv(v) => {
                let words: Vec<String> = v.iter().map(Scalar::text).collect();
                match words.split_first() {
                    Some((first, _)) if first == "NONE" => {
                        self.note(&e.key_origin, key, "`test: [NONE]`: no readiness probe written; devenv still uses the image's HEALTHCHECK if it has one");
                        return Ok(None);
                    }
                    Some((first, rest)) if first == "CMD" && !rest.is_empty() => emit::Cmd::Exec(
                        rest.iter()
                            .map(|w| self.keep(&e.value, key, w))
                            .collect::<Result<_, _>>()?,
                    ),
                    Some((first, rest)) if first == "CMD-SHELL" && !rest.is_empty() => {
                        emit::Cmd::Shell(self.keep(&e.value, key, &rest.join(" "))?)
                    }
                    _ => {
                        return Err(located(
                            &e.value.origin,
                            &format!("{key}.test"),
                            "expected `[CMD, ...]`, `[CMD-SHELL, ...]`, `[NONE]` or a command line"
                                .into(),
                            None,
                        ));
                    }
                }
            }
        };
        let seconds =
            |this: &Self, field: &str, v: &Option<String>| -> Result<Option<f64>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(text) => {
                        let text = this.resolve(&e.value, key, text)?;
                        duration_seconds(&text).map(Some).ok_or_else(|| {
                            located(
                                &e.value.origin,
                                &format!("{key}.{field}"),
                                format!("`{text}` is not a duration"),
                                Some("e.g. `10s`, `1m30s`, `500ms`".into()),
                            )
                        })
                    }
                }
            };
        let interval = seconds(self, "interval", &h.interval)?;
        let timeout = seconds(self, "timeout", &h.timeout)?;
        let start_period = seconds(self, "start_period", &h.start_period)?;
        let start_interval = seconds(self, "start_interval", &h.start_interval)?;
        if let Some(t) = timeout {
            self.note(&e.key_origin, &format!("{key}.timeout"), format!("{t}s per check is not kept: devenv bounds each check by the probe period and the overall deadline"));
        }
        let retries = h.retries.filter(|r| *r > 0);
        // Compose gives up after start_period plus retries failed intervals (defaults
        // 30 s and 3); devenv's deadline is at least its usual 60 s.
        let deadline = start_period.map(|sp| {
            let budget = sp + interval.unwrap_or(30.0) * retries.unwrap_or(3) as f64;
            budget.max(60.0)
        });
        Ok(Some(OutProbe {
            command,
            // While starting compose checks every start_interval; devenv's period
            // applies to both phases, so the shorter one keeps `up` quick.
            period: match (interval, start_interval) {
                (Some(i), Some(s)) => Some(i.min(s)),
                (i, s) => i.or(s),
            },
            failure_threshold: retries,
            timeout: deadline,
        }))
    }

    fn port(
        &mut self,
        e: &Entry,
        key: &str,
        spec: PortSpec,
        out: &mut Out,
    ) -> Result<(), ConfigError> {
        let (target, published, host_ip, protocol) = match spec {
            PortSpec::Short(s) => {
                let text = s.text();
                let resolved = self.resolve(&e.value, key, &text)?;
                let p = ports::parse_short(&resolved).map_err(|w| {
                    located(
                        &e.value.origin,
                        key,
                        w,
                        Some(
                            "`[HOST_IP:][HOST:]CONTAINER[/PROTOCOL]`, e.g. `127.0.0.1:8080:80`"
                                .into(),
                        ),
                    )
                })?;
                // The published part keeps its variable when it was one reference.
                let parts = split_outside_braces(&text);
                let written_host = (parts.len() >= 2).then(|| parts[parts.len() - 2].to_owned());
                let keep_host = written_host.filter(|h| {
                    h.starts_with('$') && p.published.as_ref().is_some_and(|r| r.len() == 1)
                });
                let published = match keep_host {
                    Some(h) => Some(ports::Published::Kept(self.keep(&e.value, key, &h)?)),
                    None => p.published.map(ports::Published::Range),
                };
                (p.target, published, p.host_ip, p.protocol)
            }
            PortSpec::Long(l) => {
                let target = self.resolve(&e.value, key, &l.target.text())?;
                let target = ports::parse_range(&target)
                    .map_err(|w| located(&e.value.origin, key, w, None))?;
                let published = match &l.published {
                    None => None,
                    Some(p) => {
                        let text = self.resolve(&e.value, key, &p.text())?;
                        Some(ports::Published::Range(
                            ports::parse_range(&text)
                                .map_err(|w| located(&e.value.origin, key, w, None))?,
                        ))
                    }
                };
                for (k, set) in [
                    ("name", l.name.is_some()),
                    ("mode", l.mode.is_some()),
                    ("app_protocol", l.app_protocol.is_some()),
                ] {
                    if set {
                        self.note(&e.key_origin, &format!("{key}.{k}"), "not converted");
                    }
                }
                (target, published, l.host_ip.clone(), l.protocol.clone())
            }
        };
        if let Some(proto) = protocol.filter(|p| p != "tcp") {
            self.note(
                &e.key_origin,
                key,
                format!("`{proto}` ports are not published: devenv forwards TCP"),
            );
            return Ok(());
        }
        if let Some(ip) = host_ip.filter(|ip| !matches!(ip.as_str(), "127.0.0.1" | "localhost")) {
            self.note(
                &e.key_origin,
                key,
                format!("published on 127.0.0.1, not on `{ip}`: devenv forwards to localhost only"),
            );
        }
        for t in &target {
            if !out.ports.contains(t) {
                out.ports.push(*t);
            }
        }
        match published {
            None => {}
            Some(ports::Published::Kept(local)) => {
                out.forward.push(format!("{local}:{}", target[0]));
            }
            Some(ports::Published::Range(published)) => {
                if published.len() == target.len() {
                    for (p, t) in published.iter().zip(&target) {
                        out.forward.push(format!("{p}:{t}"));
                    }
                } else if published.len() > 1 && target.len() == 1 {
                    // A host range for one port: compose picks one of them.
                    out.forward.push(format!("{}:{}", published[0], target[0]));
                } else {
                    return Err(located(
                        &e.value.origin,
                        key,
                        "the published and container port ranges differ in length".into(),
                        None,
                    ));
                }
            }
        }
        Ok(())
    }

    fn volume(
        &mut self,
        e: &Entry,
        key: &str,
        service: &str,
        spec: VolumeSpec,
        top_volumes: &BTreeMap<String, (Origin, Option<serde_yaml::Value>)>,
        out: &mut Out,
    ) -> Result<(), ConfigError> {
        let (kind, source, target, read_only, size) = match spec {
            VolumeSpec::Short(text) => {
                let text = self.resolve(&e.value, key, &text)?;
                let parts: Vec<&str> = text.split(':').collect();
                let (source, target, mode) = match parts[..] {
                    [target] => (None, target, None),
                    [source, target] => (Some(source), target, None),
                    [source, target, mode] => (Some(source), target, Some(mode)),
                    _ => {
                        return Err(located(
                            &e.value.origin,
                            key,
                            format!("`{text}` is not `[SOURCE:]TARGET[:MODE]`"),
                            None,
                        ))
                    }
                };
                let mut read_only = false;
                for m in mode.unwrap_or("").split(',').filter(|m| !m.is_empty()) {
                    match m {
                        "ro" => read_only = true,
                        "rw" => {}
                        other => self.note(
                            &e.key_origin,
                            key,
                            format!("mount option `{other}` of `{text}` not kept"),
                        ),
                    }
                }
                let kind = match source {
                    None => "anonymous",
                    Some(s) if s.starts_with(['.', '/', '~']) => "bind",
                    Some(_) => "volume",
                };
                (
                    kind.to_owned(),
                    source.map(str::to_owned),
                    target.to_owned(),
                    read_only,
                    None,
                )
            }
            VolumeSpec::Long(l) => {
                for k in l.other.keys().filter_map(scalar_text) {
                    self.note(
                        &e.key_origin,
                        &format!("{key}.{k}"),
                        "volume option not converted",
                    );
                }
                let Some(target) = l.target.clone() else {
                    return Err(located(
                        &e.value.origin,
                        key,
                        "a volume has no `target`".into(),
                        None,
                    ));
                };
                let kind = l.kind.clone().unwrap_or_else(|| "volume".into());
                let kind = if kind == "volume" && l.source.is_none() {
                    "anonymous".into()
                } else {
                    kind
                };
                let size = l
                    .tmpfs
                    .as_ref()
                    .and_then(|t| t.size.as_ref())
                    .map(|s| size_quantity(&s.text()));
                for k in l
                    .tmpfs
                    .iter()
                    .flat_map(|t| t.other.keys())
                    .filter_map(scalar_text)
                {
                    self.note(
                        &e.key_origin,
                        &format!("{key}.tmpfs.{k}"),
                        "tmpfs option not converted",
                    );
                }
                (
                    kind,
                    l.source.clone(),
                    target,
                    l.read_only == Some(true),
                    size,
                )
            }
        };
        match kind.as_str() {
            "bind" => {
                let source = source.unwrap_or_default();
                if source.starts_with('~') {
                    self.note(&e.key_origin, key, format!("bind mount `{source}:{target}` left out: `~` is not expanded by devenv; write the path"));
                    return Ok(());
                }
                let host = self.path(&source);
                let exists = if host.starts_with('/') {
                    Path::new(&host).exists()
                } else {
                    self.project_dir.join(&host).exists()
                };
                if !exists {
                    self.note(&e.key_origin, key, format!("bind mount source `{host}` does not exist (compose would create it; devenv refuses it): left out, create it and add `{host}:{target}` back"));
                    return Ok(());
                }
                let ro = if read_only { ":ro" } else { "" };
                out.volumes.push(format!("{host}:{target}{ro}"));
            }
            "volume" => {
                let source = source.unwrap_or_default();
                if !top_volumes.contains_key(&source) {
                    self.note(&e.key_origin, key, format!("volume `{source}` is not declared under the top-level `volumes`: converted as a persistent volume"));
                }
                let mut name = to_label(&source);
                if name.is_empty() {
                    name = self.fresh_volume(&format!("{service}-data"));
                }
                if name != source {
                    self.note(
                        &e.key_origin,
                        key,
                        format!(
                            "volume `{source}` renamed to `{name}` (volume names are DNS labels)"
                        ),
                    );
                }
                if read_only {
                    self.note(&e.key_origin, key, format!("`:ro` on named volume `{source}` not kept (devenv mounts named volumes read-write)"));
                }
                let name = self.add_volume(OutVolume {
                    name,
                    kind: "persistent",
                    size: None,
                });
                out.volumes.push(format!("{name}:{target}"));
            }
            "anonymous" => {
                let name = self.fresh_volume(&format!("{service}-data"));
                let name = self.add_volume(OutVolume {
                    name,
                    kind: "ephemeral",
                    size: None,
                });
                out.volumes.push(format!("{name}:{target}"));
            }
            "tmpfs" => {
                let name = self.fresh_volume(&format!("{service}-tmpfs"));
                let name = self.add_volume(OutVolume {
                    name,
                    kind: "tmpfs",
                    size,
                });
                out.volumes.push(format!("{name}:{target}"));
            }
            other => self.note(
                &e.key_origin,
                key,
                format!("volume type `{other}` not converted"),
            ),
        }
        Ok(())
    }
}

/// YAML merge keys (`<<: *common`, `<<: [*a, *b]`), which compose files use with
/// `x-` anchors: the merged mapping's entries are added where the mapping does not set
/// them itself. The copies come from aliases the parser has already counted against
/// its bounds.
fn merge_keys(node: &mut Node) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(merge_keys),
        Value::Map(entries) => {
            entries.iter_mut().for_each(|e| merge_keys(&mut e.value));
            let Some(at) = entries.iter().position(|e| e.key == "<<") else {
                return;
            };
            let merged = entries.remove(at);
            let sources = match merged.value.value {
                Value::Map(m) => vec![m],
                Value::Seq(items) => items
                    .into_iter()
                    .filter_map(|n| match n.value {
                        Value::Map(m) => Some(m),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for source in sources {
                for e in source {
                    if !entries.iter().any(|x| x.key == e.key) {
                        entries.push(e);
                    }
                }
            }
        }
        _ => {}
    }
}

/// `postgresql` or `redis` when the image is the official one (any tag).
fn preset_of(image: &str) -> Option<&'static str> {
    let no_digest = image.split('@').next().unwrap_or(image);
    let repo = match no_digest.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => no_digest,
    };
    let repo = repo
        .strip_prefix("docker.io/")
        .unwrap_or(repo)
        .strip_prefix("library/")
        .unwrap_or(repo.strip_prefix("docker.io/").unwrap_or(repo));
    match repo {
        "postgres" => Some("postgresql"),
        "redis" => Some("redis"),
        _ => None,
    }
}

/// `text` split at the `:`s outside `${...}`.
fn split_outside_braces(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            b':' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A compose size (`64m`, `1g`, bytes) as a quantity devenv reads.
fn size_quantity(text: &str) -> String {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let unit = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => "",
        "k" | "kb" | "kib" => "Ki",
        "m" | "mb" | "mib" => "Mi",
        "g" | "gb" | "gib" => "Gi",
        _ => return t.to_owned(),
    };
    format!("{digits}{unit}")
}

/// Seconds of a compose duration (`1m30s`, `500ms`, `10s`, `1h`).
pub(super) fn duration_seconds(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_end);
        let n: f64 = num.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        total += n * match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = tail;
    }
    Some(total)
}

/// Splits a command line into words as compose does (shell quoting, no expansion).
pub(super) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated `'` in the command".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated `\"` in the command".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated `\"` in the command".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}
