//! Profiles (docker compose's): a service with `profiles:` runs only when one of its
//! profiles is active or it is named on the command line; services without run always.

use std::collections::BTreeSet;

use super::{suggest, ConfigError, ConfigErrors, Loaded, Origin};

/// The services an `up` asks for, given the names on its command line (`requested`) and
/// the active profiles. Empty `requested`: every service that is active. A service that
/// would start only as a dependency of another, while its own profiles are inactive, is
/// an error naming both, as is a profile no service has.
pub fn select(
    loaded: &Loaded,
    requested: &[String],
    profiles: &[String],
) -> Result<Vec<String>, ConfigErrors> {
    let env = &loaded.environment;
    let known: BTreeSet<&str> = env
        .services
        .iter()
        .flat_map(|s| s.profiles.iter().map(String::as_str))
        .collect();
    let whole_file = |message: String, hint: Option<String>| ConfigError {
        file: loaded.config_file.clone(),
        line: 0,
        column: 0,
        key: String::new(),
        message,
        hint,
    };
    let mut errors = Vec::new();
    for p in profiles.iter().filter(|p| !known.contains(p.as_str())) {
        let hint = if known.is_empty() {
            "no service has `profiles:`".to_owned()
        } else {
            suggest::did_you_mean(p, known.iter().copied(), "profiles in this config")
        };
        errors.push(whole_file(
            format!("no service has profile `{p}`"),
            Some(hint),
        ));
    }
    let active = |name: &str| {
        requested.iter().any(|r| r == name)
            || env.service(name).is_some_and(|s| {
                s.profiles.is_empty() || s.profiles.iter().any(|p| profiles.contains(p))
            })
    };
    let selected: Vec<String> = if requested.is_empty() {
        env.services
            .iter()
            .filter(|s| active(&s.name))
            .map(|s| s.name.clone())
            .collect()
    } else {
        requested.to_vec()
    };
    if selected.is_empty() && !env.services.is_empty() {
        errors.push(whole_file(
            "every service has `profiles:` and none of them is active".into(),
            Some(format!(
                "activate one with `--profile NAME` ({}), or name services: `devenv up SERVICE`",
                suggest::ticked(known.iter().copied())
            )),
        ));
    }
    // Walk the dependencies of what was asked for; each must be active itself.
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = selected.iter().map(String::as_str).collect();
    while let Some(name) = stack.pop() {
        if !seen.insert(name) {
            continue;
        }
        let Some((i, svc)) = env
            .services
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
        else {
            continue; // an unknown name on the command line: `up` reports it
        };
        for (j, dep) in svc.dependencies.iter().enumerate() {
            stack.push(dep);
            if active(dep) {
                continue;
            }
            let theirs = env
                .service(dep)
                .map(|d| d.profiles.clone())
                .unwrap_or_default();
            let path = format!("spec.services[{i}].dependencies[{j}]");
            let origin = loaded
                .values
                .iter()
                .find(|(p, _, _)| *p == path)
                .map_or(Origin::Default, |(_, _, o)| o.clone());
            let mut e = ConfigError::at(
                &origin,
                &path,
                format!(
                    "service `{name}` depends on `{dep}`, which runs only with profile {} (not active)",
                    suggest::ticked(theirs.iter().map(String::as_str))
                ),
                Some(format!(
                    "add `--profile {}`, or name both: `devenv up {name} {dep}`",
                    theirs.first().map_or("NAME", String::as_str)
                )),
            );
            if origin == Origin::Default {
                e.file = loaded.config_file.clone();
            }
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(selected)
    } else {
        errors.dedup();
        Err(ConfigErrors(errors))
    }
}
