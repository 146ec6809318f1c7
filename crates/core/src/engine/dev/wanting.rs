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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::env_with_cluster as env;

    const SERVICES: &str = "    - name: web
      image: nginx:1.27
      dev: { command: [sleep, infinity] }
    - name: api
      image: api:1
    - name: tool
      command: run tool
";

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn up_dev_claims_eligible_services_and_a_plain_up_releases_them() {
        let env = env(SERVICES);
        let all = names(&["web", "api", "tool"]);
        let mut wanted = BTreeMap::new();
        want(&mut wanted, &env, &all, true, None).unwrap();
        assert_eq!(wanted.get("web"), Some(&DevOwner::Up));
        assert_eq!(wanted.len(), 1, "{wanted:?}");
        want(&mut wanted, &env, &all, false, None).unwrap();
        assert!(wanted.is_empty(), "{wanted:?}");
    }

    #[test]
    fn a_session_claims_its_services_and_keeps_them_from_others() {
        let env = env(SERVICES);
        let web = names(&["web"]);
        let mut wanted = BTreeMap::new();
        want(&mut wanted, &env, &web, false, Some((1, &web))).unwrap();
        assert_eq!(wanted.get("web"), Some(&DevOwner::Session(1)));
        // The same session again is fine; another is refused.
        want(&mut wanted, &env, &web, false, Some((1, &web))).unwrap();
        let e = want(&mut wanted, &env, &web, false, Some((2, &web))).unwrap_err();
        assert!(matches!(e, EngineError::Dev(DevError::OtherSession(ref n)) if n == "web"));
        // A plain `up` leaves a session's claim alone.
        want(&mut wanted, &env, &web, false, None).unwrap();
        assert_eq!(wanted.get("web"), Some(&DevOwner::Session(1)));
    }

    #[test]
    fn a_session_names_only_kubernetes_services_with_a_dev_section() {
        let env = env(SERVICES);
        let mut wanted = BTreeMap::new();
        let check = |wanted: &mut BTreeMap<String, DevOwner>, n: &str| {
            let v = names(&[n]);
            want(wanted, &env, &v, false, Some((1, &v))).unwrap_err()
        };
        assert!(matches!(
            check(&mut wanted, "tool"),
            EngineError::Dev(DevError::LocalProcess(_))
        ));
        assert!(matches!(
            check(&mut wanted, "api"),
            EngineError::Dev(DevError::NoDevSection(_))
        ));
        match check(&mut wanted, "nosuch") {
            EngineError::UnknownService(u) => {
                assert_eq!(u.unknown, names(&["nosuch"]));
                assert_eq!(u.known, names(&["web", "api", "tool"]));
            }
            other => panic!("expected an unknown service, got {other:?}"),
        }
        assert!(wanted.is_empty(), "a refused session claims nothing");
    }
}
