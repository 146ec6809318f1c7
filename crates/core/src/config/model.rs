//! The checked config: what the engine runs from. Produced by [`super::load`] from the
//! raw YAML layers; every invariant documented here holds once a value exists.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::secret::Secret;

/// One validated environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    /// `metadata.name`, a DNS-1123 label.
    pub name: String,
    /// `metadata.version`: the project's own label for its config, shown by `ls` and
    /// `status`; devenv gives it no other meaning.
    pub version: Option<String>,
    /// Absolute project root (the directory holding `.devenv/`).
    pub project_dir: PathBuf,
    /// Services in declaration order. Names are unique; every dependency names
    /// another service of this list; the dependency graph is acyclic.
    pub services: Vec<Service>,
    pub cluster: Option<Cluster>,
    pub volumes: Vec<Volume>,
    pub secrets: Vec<Secret>,
    pub hooks: Hooks,
    /// `spec.workspaces`, each the client's user's own.
    pub workspaces: Vec<super::workspace::Workspace>,
}

impl Service {
    /// How long one start of this service may take: its readiness deadline, else
    /// [`DEFAULT_START_DEADLINE`].
    pub fn start_deadline(&self) -> Duration {
        self.readiness
            .as_ref()
            .map_or(DEFAULT_START_DEADLINE, Readiness::deadline)
    }
}

impl Environment {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The variables `svc`'s `secrets:` give it, in the order it names them (a later
    /// secret's key wins). A local process gets them in its environment, under its
    /// own `env` (which wins, as `env` does over `envFrom` in a pod).
    pub fn secret_vars(&self, svc: &Service) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for name in &svc.secrets {
            if let Some(secret) = self.secrets.iter().find(|s| &s.name == name) {
                out.extend(secret.data.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        out
    }

    /// The revisions of the secrets `svc` uses, joined: changes when one of their values
    /// does (after `crate::secrets::resolve`), never shows one.
    pub fn secrets_revision(&self, svc: &Service) -> String {
        svc.secrets
            .iter()
            .filter_map(|name| self.secrets.iter().find(|s| &s.name == name))
            .map(|s| s.revision.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    Local,
    Kubernetes,
    /// A container on the local Docker (or Podman) engine.
    Container,
    /// A terraform root module (`terraform:`): init, plan, apply, outputs.
    Terraform,
    /// A service-type plugin (`type: <plugin>`) speaking devenv's protocol on stdio.
    Plugin,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Kubernetes => "kubernetes",
            Self::Container => "container",
            Self::Terraform => "terraform",
            Self::Plugin => "plugin",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub runtime: RuntimeKind,
    /// For local services: what to run. For kubernetes and container services: the
    /// container's command.
    pub command: Option<Command>,
    /// Absolute working directory (relative paths resolved against the project dir).
    pub workdir: PathBuf,
    /// Environment for the process / container: the `envFile` files' variables (later
    /// files win), then `env` (which wins over them).
    pub env: BTreeMap<String, String>,
    /// Absolute `envFile` paths, already read into `env`.
    pub env_files: Vec<PathBuf>,
    /// Profiles the service belongs to; empty: it always runs.
    pub profiles: Vec<String>,
    /// Absolute source directory (`source:`): the default build context, `dev.sync`
    /// source and watch path.
    pub source: Option<PathBuf>,
    /// The port numbers (`port` of each of `port_specs`, in order).
    pub ports: Vec<u16>,
    /// The ports in full: names are unique; probes and forwards that name a port were
    /// resolved to its `target_port` when the config was checked.
    pub port_specs: Vec<PortSpec>,
    pub dependencies: Vec<String>,
    /// Dependencies whose restart restarts this service too (`{db: {restart: true}}`).
    pub restart_with: Vec<String>,
    pub readiness: Option<Readiness>,
    pub restart: RestartPolicy,
    /// Runs to completion (migrations, seeds): dependents wait until it exited 0.
    pub oneshot: bool,
    pub watch: Option<Watch>,
    /// Kubernetes sources; at most one of image/manifests/chart, or a preset.
    pub image: Option<String>,
    pub manifests: Option<PathBuf>,
    pub chart: Option<String>,
    /// A workload that exists in the namespace already: devenv gates on it, follows
    /// its logs, forwards to it and puts it in dev mode, but never creates or deletes it.
    pub workload: Option<WorkloadRef>,
    pub preset: Option<Preset>,
    /// `"LOCAL:REMOTE"` forward rules, parsed.
    pub forward: Vec<(u16, u16)>,
    /// Image build (kubernetes and containers): the built image replaces `image`.
    pub build: Option<Build>,
    /// Helm values for `chart` (a YAML mapping, kept as JSON).
    pub values: Option<serde_json::Value>,
    /// Pods of the Deployment (`image` services). Default 1.
    pub replicas: u32,
    pub resources: Option<Resources>,
    /// Environment-level volumes mounted into the container.
    pub volumes: Vec<VolumeMount>,
    /// Host directories mounted into the container (`./dir:/path[:ro]`; containers only).
    pub binds: Vec<BindMount>,
    /// Environment-level secrets whose keys become environment variables.
    pub secrets: Vec<String>,
    pub dev: Option<Dev>,
    pub hooks: ServiceHooks,
    /// `terraform:` (runtime [`RuntimeKind::Terraform`]).
    pub terraform: Option<super::Terraform>,
    /// `type: <plugin>` (runtime [`RuntimeKind::Plugin`]).
    pub plugin: Option<super::PluginService>,
    /// The Ingress `up` keeps for it (`networking.ingress`; kubernetes services only).
    pub ingress: Option<super::IngressRoute>,
    /// `snapshot: live`: a snapshot copies its data while it runs (not stopped).
    pub snapshot_live: bool,
    /// Set at run time, not by the config: the `env` entries that hold a sensitive
    /// terraform output once `${tf.SERVICE.OUTPUT}` is replaced (a kubernetes
    /// service gets them from a Secret, never in its Deployment).
    pub sensitive_env: std::collections::BTreeSet<String>,
    /// A keyed digest of those entries' values (`crate::secrets::revision`): a new
    /// value rolls the pods out.
    pub sensitive_revision: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    /// Absolute build context.
    pub context: PathBuf,
    /// Absolute Dockerfile path, when not `<context>/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    /// Build arguments (the Dockerfile's `ARG`s).
    pub args: BTreeMap<String, String>,
    /// The stage to build (`--target`).
    pub target: Option<String>,
    /// Absolute path of an OCI image layout tarball, pushed when no builder is present
    /// (only with `spec.cluster.image.registry`).
    pub tarball: Option<PathBuf>,
}

/// Kubernetes resource requests and limits, e.g. `cpu: 100m`, `memory: 128Mi`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VolumeMount {
    /// A `spec.volumes` name.
    pub name: String,
    /// Absolute path in the container.
    pub path: String,
    /// A configmap volume's files' digest: a changed file is a changed service, which
    /// `up` replaces (rolls out, restarts).
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BindMount {
    /// Absolute host path (relative ones start at the project directory).
    pub host: PathBuf,
    /// Absolute path in the container.
    pub path: String,
    pub read_only: bool,
}

/// One port of a service: `port` is the one it is reached on (the Kubernetes
/// Service's port, a local process's port); `target_port` the one its process or
/// container listens on (the same unless `targetPort` says otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// An IANA_SVC_NAME (at most 15 characters, lowercase letters, digits, `-`).
    pub name: Option<String>,
    pub port: u16,
    pub target_port: u16,
    pub protocol: Protocol,
}

impl PortSpec {
    /// `port` written as a plain number.
    pub fn number(port: u16) -> Self {
        Self {
            name: None,
            port,
            target_port: port,
            protocol: Protocol::Tcp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Kubernetes' spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub name: String,
    pub kind: VolumeKind,
    /// The size a Kubernetes quantity gives: a persistent claim's request (default
    /// `1Gi`), a tmpfs' or ephemeral volume's limit (none by default).
    pub size: Option<String>,
}

/// The default request of a persistent volume claim.
pub const DEFAULT_CLAIM_SIZE: &str = "1Gi";

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeKind {
    /// A PersistentVolumeClaim (a named volume in a container, a directory under the
    /// data dir for a local process), kept by `down` unless `--volumes`.
    Persistent {
        storage_class: Option<String>,
        /// `ReadWriteOnce` (default), `ReadWriteMany`, `ReadOnlyMany` or
        /// `ReadWriteOncePod`.
        access_mode: String,
    },
    /// An `emptyDir` (an anonymous volume in a container), gone with the pod.
    Ephemeral,
    /// In memory: a memory-backed `emptyDir` on Kubernetes, a tmpfs in a container, a
    /// directory on /dev/shm for a local process.
    Tmpfs,
    /// A ConfigMap of the files of `source` (a file or a directory), updated by `up`;
    /// `digest` is that of the files when the config was checked.
    Configmap { source: PathBuf, digest: String },
    /// A host directory: hostPath on a single-node cluster (several nodes only with
    /// `force`), a bind mount in a container, the directory itself for a process.
    Host { path: PathBuf, force: bool },
}

impl Volume {
    pub fn persistent(&self) -> bool {
        matches!(self.kind, VolumeKind::Persistent { .. })
    }

    pub fn tmpfs(&self) -> bool {
        matches!(self.kind, VolumeKind::Tmpfs)
    }

    /// The type as written in the config.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            VolumeKind::Persistent { .. } => "persistent",
            VolumeKind::Ephemeral => "ephemeral",
            VolumeKind::Tmpfs => "tmpfs",
            VolumeKind::Configmap { .. } => "configmap",
            VolumeKind::Host { .. } => "host",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dev {
    pub command: Option<Command>,
    pub image: Option<String>,
    pub sync: Vec<SyncRule>,
    pub on_sync: OnSync,
}

/// `deployment/api`: a workload by kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    pub name: String,
}

impl WorkloadRef {
    /// Parses `deployment/api` (kind case-insensitive, `deploy`/`sts`/`ds` too).
    pub fn parse(s: &str) -> Option<Self> {
        let (kind, name) = s.split_once('/')?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => "Deployment",
            "statefulset" | "statefulsets" | "sts" => "StatefulSet",
            "daemonset" | "daemonsets" | "ds" => "DaemonSet",
            _ => return None,
        };
        let subdomain = name.len() <= 253 && name.split('.').all(super::names::is_label);
        subdomain.then(|| Self {
            kind: kind.into(),
            name: name.into(),
        })
    }
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.to_ascii_lowercase(), self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncRule {
    /// Absolute local directory.
    pub from: PathBuf,
    /// Absolute directory in the container.
    pub to: String,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum OnSync {
    #[default]
    None,
    Restart,
    Exec(Command),
}

#[cfg(test)]
impl Service {
    /// A kubernetes service with nothing set, for tests to fill in.
    pub(crate) fn test(name: &str) -> Self {
        Self {
            name: name.into(),
            runtime: RuntimeKind::Kubernetes,
            command: None,
            workdir: "/p".into(),
            env: BTreeMap::new(),
            env_files: vec![],
            profiles: vec![],
            source: None,
            ports: vec![],
            port_specs: vec![],
            dependencies: vec![],
            restart_with: vec![],
            readiness: None,
            restart: Default::default(),
            oneshot: false,
            watch: None,
            image: None,
            manifests: None,
            chart: None,
            workload: None,
            preset: None,
            forward: vec![],
            build: None,
            values: None,
            replicas: 1,
            resources: None,
            volumes: vec![],
            binds: vec![],
            secrets: vec![],
            dev: None,
            hooks: ServiceHooks::default(),
            terraform: None,
            plugin: None,
            ingress: None,
            snapshot_live: false,
            sensitive_env: Default::default(),
            sensitive_revision: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A string: run through `sh -c`.
    Shell(String),
    /// A list: exec'd directly (argv[0] looked up on PATH).
    Exec(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    Never,
    OnFailure,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Postgresql,
    Redis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    pub probe: Probe,
    pub initial_delay: Duration,
    pub period: Duration,
    /// Overall deadline for becoming ready (`timeoutSeconds`, default 60 s).
    pub timeout: Duration,
    /// Consecutive failures after ready before the service is `unhealthy` (default 3).
    pub failure_threshold: u32,
}

/// How long a service may take to start when it sets no readiness probe: `up` waits
/// this long for a one-shot task or a local service that keeps restarting, and a
/// kubernetes workload this long for its rollout. Ten minutes, Kubernetes' own default
/// `progressDeadlineSeconds`: a rollout the cluster still calls progressing is not
/// failed earlier by devenv. Failures that need no waiting (an image that can't be
/// pulled, a crash loop, an unschedulable pod, a process that exits) are reported at
/// once, so the long deadline only bounds work that is still going on (image pulls
/// over slow links, migrations, seeds).
pub const DEFAULT_START_DEADLINE: Duration = Duration::from_secs(600);

impl Readiness {
    /// How long a start may take to become ready: the initial delay plus the
    /// timeout. The one place this is computed (supervisor, kube runner, `up`,
    /// `restart`).
    pub fn deadline(&self) -> Duration {
        self.initial_delay + self.timeout
    }
}

#[cfg(test)]
mod readiness_tests {
    use super::*;

    #[test]
    fn the_deadline_is_the_initial_delay_plus_the_timeout() {
        let r = Readiness {
            probe: Probe::Tcp {
                host: "127.0.0.1".into(),
                port: 1,
            },
            initial_delay: Duration::from_secs(2),
            period: Duration::from_millis(100),
            timeout: Duration::from_secs(60),
            failure_threshold: 3,
        };
        assert_eq!(r.deadline(), Duration::from_secs(62));
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// 2xx/3xx from `GET http://host:port/path`.
    Http {
        host: String,
        port: u16,
        path: String,
    },
    Tcp {
        host: String,
        port: u16,
    },
    /// Exit status 0.
    Exec {
        command: Command,
    },
    /// A line of the service's output matching this regex.
    Log {
        pattern: LogPattern,
    },
    /// The server accepts connections (pg_isready's meaning): a PostgreSQL startup
    /// exchange gets an authentication request or an error other than "starting up",
    /// "in recovery" or "shutting down". Used by the postgresql preset.
    Postgres {
        host: String,
        port: u16,
        user: String,
        database: String,
    },
    /// `PING` answered with `PONG` (after `AUTH` when a password is set). Used by the
    /// redis preset.
    Redis {
        host: String,
        port: u16,
        password: Option<String>,
    },
}

/// A log probe's regex, compiled once when the config is checked; equal when written
/// the same.
#[derive(Debug, Clone)]
pub struct LogPattern(regex::Regex);

impl LogPattern {
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(pattern).map(Self)
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for LogPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Display for LogPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    /// Absolute paths.
    pub paths: Vec<PathBuf>,
    pub ignore: Vec<String>,
    pub action: WatchAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WatchAction {
    Restart,
    Exec(Command),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub provider: ClusterProvider,
    pub name: Option<String>,
    pub context: Option<String>,
    pub namespace: String,
    pub k3d: K3d,
    /// `shared: true`: other people use the cluster too (the default namespace is
    /// the user's own).
    pub shared: bool,
    /// The ResourceQuota and LimitRange devenv keeps in the namespace.
    pub policy: super::quota::NamespacePolicy,
    /// The image of `devenv snapshot`'s helper pod (sh, tar, find, stat, xargs);
    /// default `kube::volcopy::DEFAULT_IMAGE`.
    pub snapshot_image: Option<String>,
    /// `image.registry`: `build:` images are pushed there and deployed by digest.
    pub registry: Option<super::registry::ImageRegistry>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct K3d {
    /// Agent (worker) nodes besides the server.
    pub agents: u32,
    /// `HOST:CONTAINER[@NODE]` port mappings, passed to `k3d cluster create --port`.
    pub ports: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterProvider {
    K3d,
    Kubeconfig,
}

/// The environment's hooks (`spec.hooks`), each point's hooks in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hooks {
    /// Before anything of an `up` starts; a failure starts nothing.
    pub pre_up: Vec<Hook>,
    /// Once everything an `up` asked for is ready.
    pub post_up: Vec<Hook>,
    /// Before `down` stops anything.
    pub pre_down: Vec<Hook>,
    /// Once `down` has stopped and removed everything.
    pub post_down: Vec<Hook>,
}

/// A service's hooks (`services[].hooks`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceHooks {
    /// Before its process or workload starts (host commands only: there is no
    /// container yet); a failure fails the service.
    pub pre_start: Vec<Hook>,
    /// Once it is ready (a oneshot: completed).
    pub post_ready: Vec<Hook>,
    /// Before `down` stops it.
    pub pre_stop: Vec<Hook>,
}

/// One hook: what runs, for how long at most, and what its failure does.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub run: HookRun,
    /// Killed (its whole process group) after this long (`timeoutSeconds`, default
    /// [`DEFAULT_HOOK_TIMEOUT`]).
    pub timeout: Duration,
    pub on_error: OnError,
}

/// How long a hook may run unless it says (`timeoutSeconds`): ten minutes, as long as
/// a start may take, for migrations and seeds.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq)]
pub enum HookRun {
    /// A host process (`command`), like a local service's.
    Host(Command),
    /// A command in the service's container (`exec`; kubernetes services only).
    Exec(Command),
}

/// What a failing hook does (`onError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// The step it belongs to fails (default).
    #[default]
    Fail,
    /// Goes on, with a warning.
    Continue,
}

impl Command {
    /// The command as a person would type it, for messages.
    pub fn display(&self) -> String {
        match self {
            Command::Shell(s) => s.clone(),
            Command::Exec(argv) => argv.join(" "),
        }
    }
}
