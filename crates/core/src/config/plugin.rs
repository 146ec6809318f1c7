//! `type: <plugin>`: a service run by a service-type plugin, the executable
//! `devenv-service-<plugin>` speaking devenv's protocol over stdio (docs/plugins.md,
//! `engine/pluginrun.rs`). Here: the plugin's name and the keys such a service takes.

use super::check::Checker;
use super::model::RuntimeKind;
use super::raw::RawService;

/// The executable of plugin `kind`: `devenv-service-<kind>`.
pub const EXECUTABLE_PREFIX: &str = "devenv-service-";

#[derive(Debug, Clone, PartialEq)]
pub struct PluginService {
    /// The plugin's name (`type:`).
    pub kind: String,
    /// `settings:`, handed to the plugin as JSON (an object; `{}` when absent).
    pub settings: serde_json::Value,
}

impl PluginService {
    pub fn executable(&self) -> String {
        format!("{EXECUTABLE_PREFIX}{}", self.kind)
    }
}

fn is_plugin_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

/// A plugin service runs what its plugin runs: keys that say what to run are refused.
pub(crate) fn runtime(
    c: &mut Checker<'_>,
    at: &str,
    name: &str,
    kind: &str,
    raw: &RawService,
) -> Option<RuntimeKind> {
    if !is_plugin_name(kind) {
        c.error(
            &format!("{at}type"),
            format!("`{kind}` is neither a preset (postgresql, redis, application) nor a plugin name"),
            Some("a plugin name is lowercase letters, digits and `-` (its executable is `devenv-service-<name>`)".into()),
        );
        return None;
    }
    // A typo of a preset is far likelier than a plugin named like one.
    if let Some(preset) =
        super::suggest::closest(kind, ["postgresql", "redis", "application"]).filter(|p| *p != kind)
    {
        c.error(
            &format!("{at}type"),
            format!("`{kind}` is not a preset: did you mean `{preset}`?"),
            Some(format!(
                "presets are postgresql, redis and application; another name runs the plugin `{EXECUTABLE_PREFIX}{kind}`"
            )),
        );
        return None;
    }
    let refused = [
        ("command", raw.command.is_some()),
        ("workdir", raw.workdir.is_some()),
        ("ports", raw.ports.is_some()),
        ("forward", raw.forward.is_some()),
        ("readiness", raw.readiness.is_some()),
        ("restart", raw.restart.is_some()),
        ("oneshot", raw.oneshot.is_some()),
        ("watch", raw.watch.is_some()),
        ("image", raw.image.is_some()),
        ("build", raw.build.is_some()),
        ("chart", raw.chart.is_some()),
        ("values", raw.values.is_some()),
        ("manifests", raw.manifests.is_some()),
        ("workload", raw.workload.is_some()),
        ("replicas", raw.replicas.is_some()),
        ("resources", raw.resources.is_some()),
        ("volumes", raw.volumes.is_some()),
        ("dev", raw.dev.is_some()),
        ("hooks", raw.hooks.is_some()),
        ("source", raw.source.is_some()),
        ("runtime", raw.runtime.is_some()),
        ("terraform", raw.terraform.is_some()),
    ];
    if let Some((key, _)) = refused.iter().find(|(_, set)| *set) {
        c.error(
            &format!("{at}{key}"),
            format!("`{key}` does not apply to service `{name}`, run by the plugin `{kind}`"),
            Some("a plugin service has `type`, `settings`, `dependencies`, `env`, `envFile`, `secrets` and `profiles`; the plugin decides how it runs".into()),
        );
        return None;
    }
    Some(RuntimeKind::Plugin)
}

pub(crate) fn check(
    c: &mut Checker<'_>,
    at: &str,
    kind: String,
    settings: Option<serde_yaml::Value>,
) -> Option<PluginService> {
    let settings = match settings.map(|s| serde_json::to_value(&s)) {
        None => serde_json::Value::Object(Default::default()),
        Some(Ok(v @ serde_json::Value::Object(_))) => v,
        Some(Ok(serde_json::Value::Null)) => serde_json::Value::Object(Default::default()),
        Some(_) => {
            c.error(
                at,
                "`settings` must be a mapping".into(),
                Some("e.g. `settings: { queues: [orders] }`".into()),
            );
            return None;
        }
    };
    Some(PluginService { kind, settings })
}
