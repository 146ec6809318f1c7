//! Config: find, layer, interpolate and check `.devenv/config.yml`.
//!
//! Raw YAML layers are parsed with positions, merged (remembering where each value
//! came from), deserialized into a raw serde model, then checked into [`model`]
//! types. Every error is located: file, line, column, key, and a hint.

#[cfg(test)]
mod bounds_tests;
mod check;
pub mod compose;
pub mod configmap;
mod de;
mod dotenv;
mod envfile;
mod exposure;
mod graph;
mod hooks;
#[cfg(test)]
mod hooks_tests;
mod index;
mod ingress;
#[cfg(test)]
mod ingress_tests;
mod init;
#[cfg(test)]
mod init_tests;
mod interpolate;
mod layers;
pub mod limits;
mod lint;
mod model;
mod names;
mod plugin;
pub mod preset;
mod profiles;
mod quota;
mod raw;
mod readiness;
mod registry;
#[cfg(test)]
mod registry_tests;
mod schema;
#[cfg(test)]
mod schema16_tests;
mod secret;
#[cfg(test)]
mod secret_tests;
mod service;
mod show;
mod snapshot;
mod suggest;
mod terraform;
#[cfg(test)]
mod tests;
mod volume;
mod workspace;
#[cfg(test)]
mod workspace_tests;
mod yaml;

pub use ingress::{IngressRoute, IngressTls, DEFAULT_DOMAIN as DEFAULT_INGRESS_DOMAIN};
pub use init::{init_project, init_template, InitOptions, InitOutcome};
pub use model::*;
pub use plugin::PluginService;
pub use profiles::select as select_profiles;
pub use quota::{ContainerLimits, NamespacePolicy};
pub use registry::ImageRegistry;
pub use secret::{parse_dotenv_values, Secret, SecretSource, DEFAULT_SECRET_COMMAND_TIMEOUT};
pub use terraform::{output_refs, referencing_strings, OutputRef, Terraform};
pub use workspace::{
    owner_of, Workspace, WorkspaceVolume, DEFAULT_VOLUMES as DEFAULT_WORKSPACE_VOLUMES,
    WORKSPACE_HOME, WORKSPACE_UID,
};

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct LoadRequest {
    /// Directory to start the upward search for `.devenv/config.yml` from
    /// (ignored when `config_file` is set).
    pub start_dir: PathBuf,
    /// Explicit config file (`-f`).
    pub config_file: Option<PathBuf>,
    /// `--env NAME`: layers `.devenv/environments/NAME.yml`.
    pub env_name: Option<String>,
    /// Process environment for `${VAR}` interpolation and `DEVENV_*` overrides.
    pub vars: BTreeMap<String, String>,
    /// User config (`~/.devenv/config.yml`); `None` to skip.
    pub user_config: Option<PathBuf>,
}

/// A located config problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
    /// Dotted key path, e.g. `spec.services[1].dependencies`.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigError {
    /// Builds an error at a merged value's origin. Values from `DEVENV_*` variables have no
    /// file position, so the variable name stands in for the file and line/column are 0.
    pub(crate) fn at(origin: &Origin, key: &str, message: String, hint: Option<String>) -> Self {
        let (file, line, column) = match origin {
            Origin::File { file, line, column } => (file.clone(), *line, *column),
            Origin::EnvVar(name) => (PathBuf::from(format!("${name}")), 0, 0),
            Origin::Default => (PathBuf::from("<built-in defaults>"), 0, 0),
            Origin::Via { at, .. } => return Self::at(at, key, message, hint),
        };
        Self {
            file,
            line,
            column,
            key: key.to_owned(),
            message,
            hint,
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// All problems found; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// Where a merged value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File {
        file: PathBuf,
        line: u32,
        column: u32,
    },
    EnvVar(String),
    Default,
    /// A value written at `at` whose `${VAR}`s were set in a `.env` file, at these lines.
    Via {
        at: Box<Origin>,
        vars: Vec<(String, Origin)>,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File { file, line, column } => write!(f, "{}:{line}:{column}", file.display()),
            Origin::EnvVar(v) => write!(f, "env {v}"),
            Origin::Default => f.write_str("default"),
            Origin::Via { at, vars } => {
                write!(f, "{at}")?;
                for (name, origin) in vars {
                    write!(f, ", ${{{name}}} from {origin}")?;
                }
                Ok(())
            }
        }
    }
}

/// A loaded, checked config.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub environment: Environment,
    /// The config file that defined the project.
    pub config_file: PathBuf,
    /// Merged config as YAML, secrets redacted.
    pub merged_yaml: String,
    /// Every leaf value (dotted path, YAML value, origin), secrets redacted.
    pub values: Vec<(String, String, Origin)>,
    /// The process variables this config depends on: every name its files (config
    /// layers, `.env`, `envFile`s) reference as `${NAME}`, and the `DEVENV_*`
    /// overrides given. What a crash recovery must keep to load it again.
    pub referenced_vars: std::collections::BTreeSet<String>,
    /// Located problems that do not stop the config from loading (`devenv validate` shows
    /// them): a secret's value in a command line, a readiness port the service doesn't
    /// list. Never hold a secret's value.
    pub warnings: Vec<ConfigError>,
}

/// Finds, layers, interpolates and checks the config. Nothing may start from an invalid
/// config, so every problem found is returned, each located.
pub fn load(req: &LoadRequest) -> Result<Loaded, ConfigErrors> {
    let one = |e: ConfigError| ConfigErrors(vec![e]);
    let project = layers::discover(req).map_err(one)?;
    let tree = layers::file_layers(req, &project).map_err(one)?;
    let dotenv = dotenv::read(&project.dir.join(".env"), &req.vars);
    load_tree(tree, project, &req.vars, dotenv)
}

/// Checks one config document given as text, as if it were the project file `file`
/// alone: no user config, environment file, `.env` or variables. The entry point of
/// the config fuzz target (`fuzz/`); not a supported API.
#[doc(hidden)]
pub fn load_str(file: &std::path::Path, text: &str) -> Result<Loaded, ConfigErrors> {
    let one = |e: ConfigError| ConfigErrors(vec![e]);
    let tree = layers::single_layer(yaml::parse(file, text).map_err(one)?);
    let project = layers::Project {
        dir: file.parent().map(PathBuf::from).unwrap_or_default(),
        config_file: file.to_path_buf(),
    };
    load_tree(
        tree,
        project,
        &BTreeMap::new(),
        Ok(dotenv::DotEnv::default()),
    )
}

/// Everything after the files are read: `DEVENV_*` overrides, interpolation, checks.
fn load_tree(
    mut tree: yaml::Node,
    project: layers::Project,
    process_vars: &BTreeMap<String, String>,
    dotenv: Result<dotenv::DotEnv, ConfigError>,
) -> Result<Loaded, ConfigErrors> {
    let mut errors = layers::apply_env_overrides(&mut tree, process_vars);
    let dotenv = dotenv.unwrap_or_else(|e| {
        errors.push(e);
        dotenv::DotEnv::default()
    });
    let mut referenced_vars: std::collections::BTreeSet<String> = process_vars
        .keys()
        .filter(|k| k.starts_with("DEVENV_"))
        .cloned()
        .collect();
    interpolate::references_in(&tree, &mut referenced_vars);
    // A variable only a secret's inline `data` names holds a secret: it is not
    // recorded for a recovery (as an `env` provider's variables are not).
    for name in secret_only_refs(&tree) {
        if !name.starts_with("DEVENV_") {
            referenced_vars.remove(&name);
        }
    }
    referenced_vars.extend(dotenv.refs.iter().cloned());
    let via_dotenv = show::dotenv_refs(&tree, process_vars, &dotenv);
    let vars = interpolate::Vars {
        process: process_vars,
        dotenv: &dotenv.vars,
    };
    interpolate::interpolate(&mut tree, &vars, "", &mut errors);
    // Values that failed to interpolate would only produce confusing follow-up errors.
    if !errors.is_empty() {
        return Err(finish(errors, &secret_values(&tree)));
    }

    let index = index::Index::build(&tree);
    let owner = workspace::owner_of(process_vars);
    let environment = check::environment(&tree, &index, &project.dir, owner.as_deref());
    let secret_values = secret_values(&tree);
    let mut environment = environment.map_err(|e| finish(e, &secret_values))?;
    let errors = envfile::apply(&mut environment, &index, process_vars, &mut referenced_vars);
    if !errors.is_empty() {
        return Err(finish(errors, &secret_values));
    }
    preset::apply_all(&mut environment, &mut tree);
    let mut warnings = exposure::secrets_in_argv(&tree, &index);
    warnings.extend(finish(lint::warnings(&environment, &index), &secret_values).0);

    show::redact(&mut tree, &secret_values);
    let merged_yaml = serde_yaml::to_string(&tree.to_serde()).unwrap_or_default();
    let mut values = Vec::new();
    show::leaves(&tree, "", &mut values);
    for (path, _, origin) in &mut values {
        if let Some(vars) = via_dotenv.get(path.as_str()) {
            *origin = Origin::Via {
                at: Box::new(origin.clone()),
                vars: vars.clone(),
            };
        }
    }
    Ok(Loaded {
        environment,
        config_file: project.config_file,
        merged_yaml,
        values,
        referenced_vars,
        warnings,
    })
}

/// Secret values as written (after interpolation), read from the tree rather than the
/// checked model so they are known even when checking fails.
fn secret_values(tree: &yaml::Node) -> Vec<String> {
    let mut out = Vec::new();
    fn collect(node: &yaml::Node, out: &mut Vec<String>) {
        match &node.value {
            yaml::Value::Str { text, .. } => out.push(text.clone()),
            yaml::Value::Int(i) => out.push(i.to_string()),
            yaml::Value::Float(f) => out.push(f.to_string()),
            yaml::Value::Seq(items) => items.iter().for_each(|n| collect(n, out)),
            yaml::Value::Map(entries) => entries.iter().for_each(|e| collect(&e.value, out)),
            yaml::Value::Null | yaml::Value::Bool(_) => {}
        }
    }
    if let Some(yaml::Value::Seq(secrets)) = tree
        .get("spec")
        .and_then(|s| s.get("secrets"))
        .map(|s| &s.value)
    {
        for data in secrets.iter().filter_map(|s| s.get("data")) {
            collect(data, &mut out);
        }
    }
    out
}

/// The `${NAME}`s the secrets' inline `data` references and nothing else in the files.
fn secret_only_refs(tree: &yaml::Node) -> std::collections::BTreeSet<String> {
    let mut in_data = std::collections::BTreeSet::new();
    let mut rest = tree.clone();
    if let Some(yaml::Value::Seq(secrets)) = rest
        .get_mut("spec")
        .and_then(|s| s.get_mut("secrets"))
        .map(|s| &mut s.value)
    {
        for data in secrets.iter_mut().filter_map(|s| s.get_mut("data")) {
            interpolate::references_in(data, &mut in_data);
            data.value = yaml::Value::Null;
        }
    }
    let mut elsewhere = std::collections::BTreeSet::new();
    interpolate::references_in(&rest, &mut elsewhere);
    in_data.retain(|name| !elsewhere.contains(name));
    in_data
}

/// Orders errors by position and makes sure no secret value leaks into one.
fn finish(mut errors: Vec<ConfigError>, secrets: &[String]) -> ConfigErrors {
    let scrubber = show::Scrubber::new(secrets);
    for e in &mut errors {
        e.message = scrubber.scrub(&e.message);
        e.hint = e.hint.as_deref().map(|h| scrubber.scrub(h));
    }
    errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    errors.dedup();
    ConfigErrors(errors)
}
