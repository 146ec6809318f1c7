//! Who wants a service in dev mode: `up --dev` (until `down` or an `up` without
//! `--dev`) or a `devenv dev` session (while it lasts). Pure data, kept on the
//! status board.

use std::collections::BTreeMap;

use crate::config::{Environment, RuntimeKind};
use crate::engine::error::{DevError, EngineError, UnknownService};

/// Who asked for a service's dev mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevOwner {
    /// `up --dev`: until `down` or an `up` without `--dev`.
    Up,
    /// A `devenv dev SERVICE` session (its id): until the client goes away.
    Session(u64),
}

/// Records in `wanted` which services of an `up` run in dev mode. A `devenv dev`
/// session (`session`: its id and services) claims its services, which must be
/// kubernetes services with a `dev` section not claimed by another session. Else
/// `up --dev` (`dev`) claims the eligible services of `set`, and an `up` without it
/// releases what an earlier `up --dev` claimed; sessions' claims stay.
pub(in crate::engine) fn want(
    wanted: &mut BTreeMap<String, DevOwner>,
    env: &Environment,
    set: &[String],
    dev: bool,
    session: Option<(u64, &[String])>,
) -> Result<(), EngineError> {
    if let Some((id, names)) = session {
        UnknownService::check(env, names)?;
        for n in names {
            let Some(svc) = env.service(n) else { continue };
            if svc.runtime != RuntimeKind::Kubernetes {
                return Err(DevError::LocalProcess(n.clone()).into());
            }
            if svc.dev.is_none() {
                return Err(DevError::NoDevSection(n.clone()).into());
            }
            if let Some(DevOwner::Session(other)) = wanted.get(n) {
                if *other != id {
                    return Err(DevError::OtherSession(n.clone()).into());
                }
            }
        }
        for n in names {
            wanted.insert(n.clone(), DevOwner::Session(id));
        }
        return Ok(());
    }
    for n in set {
        let Some(svc) = env.service(n) else { continue };
        let eligible = svc.runtime == RuntimeKind::Kubernetes && svc.dev.is_some();
        match wanted.get(n) {
            Some(DevOwner::Session(_)) => {}
            _ if dev && eligible => {
                wanted.insert(n.clone(), DevOwner::Up);
            }
            Some(DevOwner::Up) => {
                wanted.remove(n);
            }
            None => {}
        }
    }
    Ok(())
}
