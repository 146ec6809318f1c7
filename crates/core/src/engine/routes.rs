//! What the local HTTP router (devenvd) can reach: one address per service of every
//! environment the daemon runs, `SERVICE.ENV` -> a port on 127.0.0.1.

use super::Engine;
use crate::config::{RuntimeKind, Service};
use crate::status::ServiceState;

/// One service the router can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `metadata.name` of its environment.
    pub environment: String,
    pub service: String,
    /// The port on 127.0.0.1 that answers for it.
    pub port: u16,
    pub state: ServiceState,
}

/// The port on 127.0.0.1 where `svc` answers: its first `forward` (a kubernetes
/// service's port forward, a container's published port), else for a local process or
/// a container its first port. A kubernetes service without a forward has none.
pub fn local_port(svc: &Service) -> Option<u16> {
    if let Some((local, _)) = svc.forward.first() {
        return Some(*local);
    }
    match svc.runtime {
        RuntimeKind::Local | RuntimeKind::Container => svc.ports.first().copied(),
        RuntimeKind::Kubernetes | RuntimeKind::Terraform | RuntimeKind::Plugin => None,
    }
}

impl Engine {
    /// Every routable service of the environments the daemon knows, by environment
    /// and service name (the first project of a name wins when two share one).
    pub fn routes(&self) -> Vec<Route> {
        let envs: Vec<_> = self
            .envs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut out: Vec<Route> = Vec::new();
        for rt in envs {
            let Some(env) = rt.config() else { continue };
            for svc in &env.services {
                let Some(port) = local_port(svc) else {
                    continue;
                };
                let state = rt
                    .shared
                    .status_of(&svc.name)
                    .map_or(ServiceState::Stopped, |s| s.state);
                out.push(Route {
                    environment: env.name.clone(),
                    service: svc.name.clone(),
                    port,
                    state,
                });
            }
        }
        out.sort_by(|a, b| (&a.environment, &a.service).cmp(&(&b.environment, &b.service)));
        out.dedup_by(|b, a| a.environment == b.environment && a.service == b.service);
        out
    }

    /// The route of `service` in environment `environment`, if it has one.
    pub fn route(&self, environment: &str, service: &str) -> Option<Route> {
        self.routes()
            .into_iter()
            .find(|r| r.environment == environment && r.service == service)
    }
}
