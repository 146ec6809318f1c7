//! The parts of a compose file that `devenv init` converts, as typed serde structs. Each
//! service key is deserialized on its own from the located tree (`super::field`), so a
//! wrong type is reported at its line; keys without a struct here are listed in the
//! report instead.

use serde::Deserialize;

/// A scalar compose accepts in place of a string (`8080`, `true`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// `command`, `entrypoint`, `healthcheck.test`: a line (split like a shell would) or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum CmdSpec {
    Line(String),
    Argv(Vec<Scalar>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum BuildSpec {
    Context(String),
    Full(BuildFull),
}

#[derive(Debug, Deserialize)]
pub(super) struct BuildFull {
    pub context: Option<String>,
    pub dockerfile: Option<String>,
    pub args: Option<KeyValues>,
    pub target: Option<String>,
    /// Everything else (`cache_from`, `ssh`, `secrets`, ...): reported.
    #[serde(flatten)]
    pub other: serde_yaml::Mapping,
}

/// `environment`, `build.args`: `{KEY: value}` or `[KEY=value, KEY]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum KeyValues {
    Map(serde_yaml::Mapping),
    List(Vec<String>),
}

impl KeyValues {
    /// The pairs in written order; `None`: the key alone (take it from the environment).
    pub fn pairs(&self) -> Result<Vec<(String, Option<String>)>, String> {
        match self {
            KeyValues::List(items) => Ok(items
                .iter()
                .map(|i| match i.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (i.clone(), None),
                })
                .collect()),
            KeyValues::Map(map) => map
                .iter()
                .map(|(k, v)| {
                    let key = scalar_text(k).ok_or("a key is not a string")?;
                    let value = match v {
                        serde_yaml::Value::Null => None,
                        other => Some(scalar_text(other).ok_or_else(|| {
                            format!("the value of `{key}` is not a string, number or boolean")
                        })?),
                    };
                    Ok((key, value))
                })
                .collect(),
        }
    }
}

pub(super) fn scalar_text(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum PortSpec {
    Short(Scalar),
    Long(PortLong),
}

#[derive(Debug, Deserialize)]
pub(super) struct PortLong {
    pub target: Scalar,
    pub published: Option<Scalar>,
    pub host_ip: Option<String>,
    pub protocol: Option<String>,
    pub name: Option<String>,
    pub mode: Option<String>,
    pub app_protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum EnvFiles {
    One(String),
    Many(Vec<EnvFileEntry>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum EnvFileEntry {
    Path(String),
    Full {
        path: String,
        required: Option<bool>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum DependsOn {
    List(Vec<String>),
    Map(serde_yaml::Mapping),
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DependsLong {
    pub condition: Option<String>,
    pub restart: Option<bool>,
    pub required: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Healthcheck {
    pub test: Option<CmdSpec>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<i64>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub disable: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum VolumeSpec {
    Short(String),
    Long(Box<VolumeLong>),
}

#[derive(Debug, Deserialize)]
pub(super) struct VolumeLong {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: Option<bool>,
    pub tmpfs: Option<TmpfsOptions>,
    /// `volume:`, `bind:`, `consistency` and the like: reported.
    #[serde(flatten)]
    pub other: serde_yaml::Mapping,
}

#[derive(Debug, Deserialize)]
pub(super) struct TmpfsOptions {
    pub size: Option<Scalar>,
    #[serde(flatten)]
    pub other: serde_yaml::Mapping,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `networks:` of a service: a list of names or a mapping of name to options.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Networks {
    List(Vec<String>),
    Map(serde_yaml::Mapping),
}

impl Networks {
    pub fn names(&self) -> Vec<String> {
        match self {
            Networks::List(v) => v.clone(),
            Networks::Map(m) => m.keys().filter_map(scalar_text).collect(),
        }
    }
}
