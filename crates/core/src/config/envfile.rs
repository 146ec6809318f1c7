//! `envFile:` per service (docker compose's `env_file`): `.env`-format files read into the
//! service's environment when the config loads, so `validate` reports a missing file and
//! `up` starts from what was checked.

use std::collections::BTreeMap;

use super::index::Index;
use super::model::Environment;
use super::ConfigError;
use super::{dotenv, limits};

/// Merges each service's files into its `env`: later files win over earlier ones and
/// `env:` wins over every file. Returns one located error per file that can't be used.
pub(crate) fn apply(
    env: &mut Environment,
    index: &Index,
    process: &BTreeMap<String, String>,
    refs: &mut std::collections::BTreeSet<String>,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (i, svc) in env.services.iter_mut().enumerate() {
        if svc.env_files.is_empty() {
            continue;
        }
        let mut merged = BTreeMap::new();
        for (j, file) in svc.env_files.iter().enumerate() {
            let key = format!("spec.services[{i}].envFile");
            // A single string is a scalar at `envFile` itself, a list has entries.
            let at = if index.has(&format!("{key}[{j}]")) {
                format!("{key}[{j}]")
            } else {
                key
            };
            // Bounded like every config input: at most 1 MiB, a regular file.
            match limits::read_text(file) {
                Ok(text) => match dotenv::parse(file, &text, process) {
                    Ok(vars) => {
                        refs.extend(vars.refs);
                        merged.extend(vars.vars);
                    }
                    Err(e) => errors.push(e),
                },
                Err(limits::ReadError::NotFound(_)) => errors.push(index.error(
                    &at,
                    format!("env file {} does not exist", file.display()),
                    Some("relative paths start at the project directory (the one holding .devenv/); create the file or correct the path".into()),
                )),
                Err(e) => errors.push(index.error(
                    &at,
                    format!("env file: {e}"),
                    matches!(e, limits::ReadError::TooLarge(..)).then(limits::size_hint),
                )),
            }
        }
        merged.extend(std::mem::take(&mut svc.env));
        svc.env = merged;
    }
    errors
}
