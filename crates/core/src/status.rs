//! Observed state of a service, as reported to clients and persisted.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Pending,
    Starting,
    Ready,
    Unhealthy,
    Failed,
    Stopping,
    Stopped,
    Completed,
}

impl ServiceState {
    /// A process may be alive in this state.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Starting | Self::Ready | Self::Unhealthy | Self::Stopping
        )
    }

    /// Dependents may start.
    pub fn satisfies_dependents(self) -> bool {
        matches!(self, Self::Ready | Self::Completed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub runtime: String,
    pub state: ServiceState,
    pub pid: Option<u32>,
    pub ports: Vec<u16>,
    pub restarts: u32,
    pub message: String,
    pub exit_code: Option<i32>,
    pub since: SystemTime,
    /// Last output lines, kept when the service failed.
    pub last_lines: Vec<String>,
    /// Its workload runs the dev version (dev mode).
    #[serde(default)]
    pub dev: bool,
    /// Of `restarts`, how many followed a crash (the process exited or failed on its
    /// own); the rest were asked for (`devenv restart`, a watch rule, a dependency).
    #[serde(default)]
    pub crashes: u32,
    /// While it runs: why it can't work fully although its own probe passes
    /// ("dependency db is down"); None when its dependencies are fine.
    #[serde(default)]
    pub degraded: Option<String>,
    /// Of a kubernetes service that was scaled (`devenv scale`): the replicas asked
    /// for and how many are ready now.
    #[serde(default)]
    pub replicas: Option<Replicas>,
}

/// Desired and ready replicas of a scaled workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicas {
    pub desired: u32,
    pub ready: u32,
}

impl ServiceStatus {
    pub fn new(name: &str, runtime: &str, ports: Vec<u16>) -> Self {
        Self {
            name: name.to_string(),
            runtime: runtime.to_string(),
            state: ServiceState::Stopped,
            pid: None,
            ports,
            restarts: 0,
            message: String::new(),
            exit_code: None,
            since: SystemTime::now(),
            last_lines: Vec::new(),
            dev: false,
            crashes: 0,
            degraded: None,
            replicas: None,
        }
    }
}
