//! The environment's side of `networking.ingress`: each kubernetes service's runner
//! applies its own Ingress (`kuberun/deploy.rs`); `up` removes the ones no service of
//! the config wants any more (a service removed, renamed, or its Ingress turned off).

use std::collections::BTreeMap;

use super::runtime::LiveEnv;
use crate::config::{Environment, RuntimeKind};

impl LiveEnv {
    /// Deletes the environment's Ingresses that no service of `env` has. Only once
    /// this daemon talks to the environment's cluster (a kubernetes service of this
    /// or an earlier `up`): an `up` of local services alone does not connect for it.
    pub(super) async fn prune_ingresses(
        &self,
        env: &Environment,
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, String> {
        if !env
            .services
            .iter()
            .any(|s| s.runtime == RuntimeKind::Kubernetes)
        {
            return Ok(Vec::new());
        }
        if self.kube.lock().await.is_none() {
            return Ok(Vec::new());
        }
        let wanted: Vec<&str> = env
            .services
            .iter()
            .filter(|s| s.ingress.is_some())
            .map(|s| s.name.as_str())
            .collect();
        let kenv = self
            .kube_env(env, vars)
            .await
            .map_err(|e| format!("removing stale Ingresses: {e}"))?;
        crate::kube::ingress::prune(&kenv, &wanted)
            .await
            .map_err(|e| format!("removing stale Ingresses: {e}"))
    }
}
