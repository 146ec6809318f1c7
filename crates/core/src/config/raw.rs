//! The config file as written: a serde model that accepts exactly the documented keys.
//!
//! Everything a person may leave out is an `Option`, so that missing values are reported
//! by the checker with a location and a hint (and all at once) instead of by serde one at a
//! time. Shape errors (unknown keys, wrong types) are serde's job.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// The top level. `spec.services` is deserialized one service at a time (see
/// [`RawSpec::services`]) so that a mistake in one service doesn't hide the others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawConfig {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<RawMetadata>,
    pub spec: Option<RawSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawMetadata {
    pub name: Option<String>,
    /// The project's own version label (`"1.0"`), shown by `ls` and `status`.
    pub version: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawSpec {
    pub cluster: Option<RawCluster>,
    /// Accepted here and read per item with [`RawService`].
    #[allow(
        dead_code,
        reason = "services are deserialized one by one from the tree"
    )]
    pub services: Option<de::IgnoredAny>,
    pub volumes: Option<Vec<RawVolume>>,
    pub secrets: Option<Vec<RawSecret>>,
    pub hooks: Option<RawHooks>,
    pub workspaces: Option<Vec<super::workspace::RawWorkspace>>,
    /// `ingress: {class, domain, tls}` (`config/ingress.rs`).
    pub networking: Option<super::ingress::RawNetworking>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawCluster {
    pub provider: Option<RawProvider>,
    pub name: Option<String>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    pub k3d: Option<RawK3d>,
    /// A cluster other people use too: the default namespace is the user's own,
    /// `devenv-<user>-<name>`.
    pub shared: Option<bool>,
    /// The namespace's ResourceQuota `hard` (`config/quota.rs`).
    pub quota: Option<BTreeMap<String, Text>>,
    /// The namespace's LimitRange for containers (`config/quota.rs`).
    pub limit_range: Option<super::quota::RawLimitRange>,
    /// The image of the helper pod that copies a claim's files for `devenv snapshot`.
    pub snapshot_image: Option<String>,
    /// `image: { registry, insecure }`: where `build:` images are pushed (`config/registry.rs`).
    pub image: Option<super::registry::RawImage>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawProvider {
    K3d,
    Kubeconfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawK3d {
    pub agents: Option<u32>,
    pub ports: Option<Strings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawSecret {
    pub name: Option<String>,
    /// `kubernetes-secret` (values in `data`) or `external-secret` (values from a
    /// `provider`); inferred from which of the two is given.
    #[serde(rename = "type")]
    pub kind: Option<RawSecretKind>,
    pub data: Option<BTreeMap<String, Text>>,
    pub provider: Option<RawSecretProvider>,
    /// Secret key -> the provider's name for it (env var, keychain account, field).
    pub keys: Option<BTreeMap<String, String>>,
    /// `file`: the dotenv or JSON file; `vault`: the secret's path under `mount`.
    pub path: Option<String>,
    /// `command`: the program printing the value (with `key`) or a JSON object.
    pub command: Option<RawCommand>,
    /// `command`: the key its whole output becomes (else the output is a JSON object).
    pub key: Option<String>,
    pub timeout_seconds: Option<u64>,
    /// `keychain`: the service name the entries are stored under.
    pub service: Option<String>,
    /// `vault`: the KV v2 mount (default `secret`).
    pub mount: Option<String>,
    /// `vault`: the server (default `$VAULT_ADDR`).
    pub address: Option<String>,
    /// `vault`: a file holding the token (default: `$VAULT_TOKEN`, else `~/.vault-token`).
    pub token_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawSecretKind {
    KubernetesSecret,
    ExternalSecret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawSecretProvider {
    Env,
    File,
    Command,
    Keychain,
    Vault,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawHooks {
    pub pre_up: Option<RawHookList>,
    pub post_up: Option<RawHookList>,
    pub pre_down: Option<RawHookList>,
    pub post_down: Option<RawHookList>,
}

/// A service's hooks (`services[].hooks`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawServiceHooks {
    pub pre_start: Option<RawHookList>,
    pub post_ready: Option<RawHookList>,
    pub pre_stop: Option<RawHookList>,
}

/// One hook in the long form: `{command: ./migrate.sh, timeoutSeconds: 60, onError: continue}`
/// or `{exec: [pg_dump, ...]}` (in the service's container).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawHookSpec {
    pub command: Option<RawCommand>,
    pub exec: Option<RawCommand>,
    pub timeout_seconds: Option<f64>,
    pub on_error: Option<RawOnError>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawOnError {
    Fail,
    Continue,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawService {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub preset: Option<RawPreset>,
    /// `local`, `kubernetes` or `container`; inferred from the other keys when absent.
    pub runtime: Option<RawRuntime>,
    pub command: Option<RawCommand>,
    pub workdir: Option<String>,
    pub env: Option<BTreeMap<String, Text>>,
    /// `.env`-format files whose variables the process gets (compose's `env_file`).
    pub env_file: Option<OneOrMore>,
    /// Profiles the service belongs to; none: it always runs (compose's `profiles`).
    pub profiles: Option<Strings>,
    /// The service's source directory: the default build context, `dev.sync` source
    /// and watch path.
    pub source: Option<String>,
    pub ports: Option<RawPorts>,
    pub forward: Option<Strings>,
    /// `[db, cache]`, or `{db: {restart: true}, cache: {}}` (compose's `depends_on`).
    pub dependencies: Option<RawDependencies>,
    pub readiness: Option<RawReadiness>,
    pub restart: Option<RawRestart>,
    pub oneshot: Option<bool>,
    pub watch: Option<RawWatch>,
    pub image: Option<String>,
    pub build: Option<RawBuild>,
    pub chart: Option<String>,
    pub values: Option<serde_yaml::Value>,
    pub manifests: Option<String>,
    /// `KIND/NAME` of a workload that exists already (devenv does not create it).
    pub workload: Option<String>,
    pub replicas: Option<u32>,
    pub resources: Option<RawResources>,
    /// `"VOLUME:/mount/path"`, naming a `spec.volumes` entry.
    pub volumes: Option<Strings>,
    /// Names of `spec.secrets` whose keys become environment variables.
    pub secrets: Option<Strings>,
    pub dev: Option<RawDev>,
    pub hooks: Option<RawServiceHooks>,
    /// A terraform root module run as a node of the graph (`config/terraform.rs`).
    pub terraform: Option<super::terraform::RawTerraform>,
    /// A service-type plugin's settings (`type: <plugin>`; `config/plugin.rs`).
    pub settings: Option<serde_yaml::Value>,
    /// `false`, `true` or `{paths, port, service}` (`config/ingress.rs`).
    pub ingress: Option<super::ingress::RawServiceIngress>,
    /// `live`: `devenv snapshot save` copies its data while it runs (`config/snapshot.rs`).
    pub snapshot: Option<super::snapshot::RawSnapshot>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawPreset {
    Postgresql,
    Redis,
    /// No preset: the runtime follows from the other keys (the explicit default).
    Application,
    /// Any other name: a service-type plugin (`config/plugin.rs`).
    #[serde(untagged)]
    Plugin(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawRuntime {
    Local,
    Kubernetes,
    Container,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RawRestart {
    Never,
    OnFailure,
    Always,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawVolume {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<RawVolumeKind>,
    pub size: Option<String>,
    /// `persistent`: the claim's storage class (default: the cluster's default class).
    pub storage_class: Option<String>,
    /// `persistent`: the claim's access mode (default `ReadWriteOnce`).
    pub access_mode: Option<String>,
    /// `configmap`: the file or directory it holds; `host`: the host directory.
    pub source: Option<String>,
    /// `host`: mount a host path on a cluster of several nodes anyway.
    pub force: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawVolumeKind {
    Persistent,
    Ephemeral,
    /// In memory (a tmpfs in a container, a memory-backed `emptyDir` on Kubernetes).
    Tmpfs,
    /// Files of the project (`source`), as a ConfigMap on Kubernetes.
    Configmap,
    /// A host directory (`source`): hostPath on Kubernetes, a bind mount in a container.
    Host,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawResources {
    pub requests: Option<BTreeMap<String, Text>>,
    pub limits: Option<BTreeMap<String, Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawBuild {
    pub context: Option<String>,
    pub dockerfile: Option<String>,
    /// `--build-arg`s: `ARG`s of the Dockerfile.
    pub args: Option<BTreeMap<String, Text>>,
    /// The stage of a multi-stage Dockerfile to build.
    pub target: Option<String>,
    /// An OCI image layout tarball pushed to `spec.cluster.image.registry` when no
    /// builder (docker engine, buildah, nerdctl) is present.
    pub tarball: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawReadiness {
    pub http: Option<RawHttp>,
    pub tcp: Option<RawTcp>,
    pub exec: Option<RawExec>,
    pub log: Option<RawLog>,
    /// Shorthand for `http` (the seed format): `{path: /, port: 8000}`.
    pub path: Option<String>,
    pub port: Option<RawPortRef>,
    pub initial_delay_seconds: Option<f64>,
    pub period_seconds: Option<f64>,
    pub timeout_seconds: Option<f64>,
    pub failure_threshold: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawHttp {
    pub path: Option<String>,
    pub port: Option<RawPortRef>,
    pub host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawTcp {
    pub port: Option<RawPortRef>,
    pub host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawExec {
    pub command: RawCommand,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawLog {
    pub pattern: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawWatch {
    pub paths: Option<Strings>,
    pub ignore: Option<Strings>,
    pub action: Option<RawAction>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawAction {
    Restart,
    Exec(RawCommand),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawDev {
    pub command: Option<RawCommand>,
    pub image: Option<String>,
    pub sync: Option<Vec<RawSync>>,
    pub on_sync: Option<RawOnSync>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawSync {
    /// Default: the service's `source`.
    pub from: Option<String>,
    pub to: String,
    pub exclude: Option<Strings>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawOnSync {
    None,
    Restart,
    Exec(RawCommand),
}

/// `command: "npm start"` (run by a shell) or `command: [npm, start]` (exec'd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawCommand {
    Shell(String),
    Exec(Vec<String>),
}

impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCommand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command (a string, or a list of strings)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCommand, E> {
                Ok(RawCommand::Shell(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCommand, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<Text>()? {
                    argv.push(arg.0);
                }
                Ok(RawCommand::Exec(argv))
            }
        }
        d.deserialize_any(V)
    }
}

/// One hook: a command (a string, or an argv list) or the long form.
#[derive(Debug)]
pub(crate) enum RawHook {
    Command(RawCommand),
    Full(RawHookSpec),
}

impl<'de> Deserialize<'de> for RawHook {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHook;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command (a string or a list of strings) or `{command | exec, timeoutSeconds, onError}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawHook, E> {
                Ok(RawHook::Command(RawCommand::Shell(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawHook, A::Error> {
                RawCommand::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(RawHook::Command)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawHook, A::Error> {
                RawHookSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawHook::Full)
            }
        }
        d.deserialize_any(V)
    }
}

/// The hooks of one hook point, run in order: a list of hooks, or one (a string or
/// the long form); empty or null: none.
#[derive(Debug, Default)]
pub(crate) struct RawHookList(pub Vec<RawHook>);

impl<'de> Deserialize<'de> for RawHookList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHookList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of hooks (each a command or `{command | exec, timeoutSeconds, onError}`)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawHookList, E> {
                Ok(RawHookList(vec![RawHook::Command(RawCommand::Shell(
                    v.to_owned(),
                ))]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawHookList, E> {
                Ok(RawHookList::default())
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawHookList, A::Error> {
                RawHookSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|h| RawHookList(vec![RawHook::Full(h)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawHookList, A::Error> {
                let mut all = Vec::new();
                while let Some(h) = seq.next_element::<RawHook>()? {
                    all.push(h);
                }
                Ok(RawHookList(all))
            }
        }
        d.deserialize_any(V)
    }
}

/// A scalar taken as text: env values and secret data may be written as numbers or
/// booleans (`PORT: 8000`, `DEBUG: true`) and are strings to the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
                Ok(Text(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of strings, with that phrase in its type errors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Strings(pub Vec<String>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut all = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    all.push(s);
                }
                Ok(Strings(all))
            }
        }
        d.deserialize_seq(V)
    }
}

/// `dependencies`: a list of service names, or a mapping of service name to options
/// (compose's long `depends_on` form), kept in the order written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RawDependencies(pub Vec<(String, RawDependency)>);

/// Options of one dependency in the mapping form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawDependency {
    /// Restart this service when the dependency restarts (compose's `restart: true`).
    pub restart: Option<bool>,
}

impl<'de> Deserialize<'de> for RawDependencies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawDependencies;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of service names, or a mapping of service name to `{restart: true}`",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawDependencies, A::Error> {
                let mut all = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    all.push((s, RawDependency::default()));
                }
                Ok(RawDependencies(all))
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawDependencies, A::Error> {
                let mut all = Vec::new();
                while let Some((name, opts)) = map.next_entry::<String, Option<RawDependency>>()? {
                    all.push((name, opts.unwrap_or_default()));
                }
                Ok(RawDependencies(all))
            }
        }
        d.deserialize_any(V)
    }
}

/// One string or a list of them: `envFile: ./api.env` or `envFile: [a.env, b.env]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct OneOrMore(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMore;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMore, E> {
                Ok(OneOrMore(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMore, A::Error> {
                let mut all = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    all.push(s);
                }
                Ok(OneOrMore(all))
            }
        }
        d.deserialize_any(V)
    }
}

/// `ports`: each an integer or `{name, port, targetPort, protocol}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RawPorts(pub Vec<RawPort>);

/// One port in the long form.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawPortSpec {
    pub name: Option<String>,
    pub port: Option<i64>,
    pub target_port: Option<i64>,
    pub protocol: Option<RawProtocol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum RawProtocol {
    #[serde(rename = "TCP", alias = "tcp")]
    Tcp,
    #[serde(rename = "UDP", alias = "udp")]
    Udp,
    #[serde(rename = "SCTP", alias = "sctp")]
    Sctp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawPort {
    Number(i64),
    Spec(RawPortSpec),
}

impl<'de> Deserialize<'de> for RawPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPort;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or `{name, port, targetPort, protocol}`")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawPort, E> {
                Ok(RawPort::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawPort, E> {
                Ok(RawPort::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            // Interpolation in a flow list is quoted: `ports: ["${API_PORT}"]`.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPort, E> {
                v.trim()
                    .parse()
                    .map(RawPort::Number)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawPort, A::Error> {
                RawPortSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawPort::Spec)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawPorts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPorts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of ports (numbers or `{name, port, targetPort, protocol}`)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawPorts, A::Error> {
                let mut all = Vec::new();
                while let Some(p) = seq.next_element::<RawPort>()? {
                    all.push(p);
                }
                Ok(RawPorts(all))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A port in a probe: a number, or the name of one of the service's ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawPortRef {
    Number(i64),
    Name(String),
}

impl<'de> Deserialize<'de> for RawPortRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawPortRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or the name of one of the service's ports")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawPortRef, E> {
                Ok(RawPortRef::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawPortRef, E> {
                Ok(RawPortRef::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPortRef, E> {
                // An interpolated number is text: `port: ${API_PORT}`.
                Ok(match v.trim().parse() {
                    Ok(n) => RawPortRef::Number(n),
                    Err(_) => RawPortRef::Name(v.to_owned()),
                })
            }
        }
        d.deserialize_any(V)
    }
}
