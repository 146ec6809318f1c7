//! The keys the config accepts at each place, read from the raw serde model itself, so that
//! `DEVENV_SPEC__SERVICES__API__READINESS__TIMEOUTSECONDS` finds `timeoutSeconds` even when
//! no file wrote that key yet.

use std::cell::Cell;

use serde::de::{self, Deserialize, Visitor};

use super::raw::*;

/// The field names serde derived for `T` (a `deny_unknown_fields` struct of [`super::raw`]).
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let fields = Cell::new(&[][..]);
    let _ = T::deserialize(Fields(&fields));
    fields.get()
}

/// A deserializer that only records what `deserialize_struct` is asked for.
struct Fields<'a>(&'a Cell<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stop")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for Fields<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.set(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The keys valid in the mapping at `path` (list indexes written `[]`, e.g.
/// `spec.services[].readiness`); `None` where keys are free (env, values, secret data).
pub(crate) fn keys_at(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "" => fields_of::<RawConfig>(),
        "metadata" => fields_of::<RawMetadata>(),
        "spec" => fields_of::<RawSpec>(),
        "spec.cluster" => fields_of::<RawCluster>(),
        "spec.cluster.k3d" => fields_of::<RawK3d>(),
        "spec.cluster.image" => fields_of::<super::registry::RawImage>(),
        "spec.cluster.limitRange" => fields_of::<super::quota::RawLimitRange>(),
        "spec.volumes[]" => fields_of::<RawVolume>(),
        "spec.secrets[]" => fields_of::<RawSecret>(),
        "spec.hooks" => fields_of::<RawHooks>(),
        "spec.networking" => fields_of::<super::ingress::RawNetworking>(),
        "spec.networking.ingress" => fields_of::<super::ingress::RawIngress>(),
        "spec.services[].ingress" => fields_of::<super::ingress::RawServiceIngressSpec>(),
        "spec.workspaces[]" => fields_of::<super::workspace::RawWorkspace>(),
        "spec.workspaces[].volumes[]" => fields_of::<super::workspace::RawWorkspaceVolume>(),
        "spec.workspaces[].resources" => fields_of::<RawResources>(),
        "spec.workspaces[].sync[]" => fields_of::<super::workspace::RawWorkspaceSync>(),
        "spec.hooks.preUp[]"
        | "spec.hooks.postUp[]"
        | "spec.hooks.preDown[]"
        | "spec.hooks.postDown[]" => fields_of::<RawHookSpec>(),
        "spec.services[].hooks" => fields_of::<RawServiceHooks>(),
        "spec.services[].hooks.preStart[]"
        | "spec.services[].hooks.postReady[]"
        | "spec.services[].hooks.preStop[]" => fields_of::<RawHookSpec>(),
        "spec.services[]" => fields_of::<RawService>(),
        "spec.services[].ports[]" => fields_of::<RawPortSpec>(),
        "spec.services[].readiness" => fields_of::<RawReadiness>(),
        "spec.services[].readiness.http" => fields_of::<RawHttp>(),
        "spec.services[].readiness.tcp" => fields_of::<RawTcp>(),
        "spec.services[].readiness.exec" => fields_of::<RawExec>(),
        "spec.services[].readiness.log" => fields_of::<RawLog>(),
        "spec.services[].watch" => fields_of::<RawWatch>(),
        "spec.services[].build" => fields_of::<RawBuild>(),
        "spec.services[].resources" => fields_of::<RawResources>(),
        "spec.services[].dev" => fields_of::<RawDev>(),
        "spec.services[].terraform" => fields_of::<super::terraform::RawTerraform>(),
        "spec.services[].dev.sync[]" => fields_of::<RawSync>(),
        _ => return None,
    })
}

/// `spec.services[3].readiness` -> `spec.services[].readiness`
pub(crate) fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether a `DEVENV_*` path segment names `key`: case and `_` don't matter, so both
/// `TIMEOUT_SECONDS` and `TIMEOUTSECONDS` name `timeoutSeconds`.
pub(crate) fn segment_names(segment: &str, key: &str) -> bool {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| *c != '_')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    squash(segment) == squash(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_raw_model() {
        let readiness = keys_at(&shape("spec.services[2].readiness")).expect("a struct");
        assert!(readiness.contains(&"timeoutSeconds"), "{readiness:?}");
        let service = keys_at("spec.services[]").expect("a struct");
        assert!(service.contains(&"envFile") && service.contains(&"dependencies"));
        assert_eq!(keys_at("spec.services[].env"), None);
    }

    #[test]
    fn segments_match_case_and_underscore_insensitively() {
        assert!(segment_names("TIMEOUTSECONDS", "timeoutSeconds"));
        assert!(segment_names("TIMEOUT_SECONDS", "timeoutSeconds"));
        assert!(!segment_names("TIMEOUT", "timeoutSeconds"));
    }
}
