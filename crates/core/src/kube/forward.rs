//! Port forwards from localhost to a kubernetes service's pods that survive pod
//! restarts and rollouts: the local listener stays up, and every new connection goes
//! to a currently ready pod of the workload (re-resolved from a pod watch).

use std::time::SystemTime;

/// Health of one forward, as `devenv forward ls` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardState {
    /// Listening; a ready pod exists and the last connection to it worked.
    Active,
    /// Listening, but no ready pod right now: new connections wait for one.
    Waiting,
    /// The last attempt to reach a pod failed; the next connection retries.
    Error,
    /// Not listening.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardStatus {
    pub service: String,
    pub local_port: u16,
    pub remote_port: u16,
    pub state: ForwardState,
    /// The pod new connections go to now.
    pub pod: Option<String>,
    pub connections: u64,
    pub active_connections: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Times the forward moved to another pod.
    pub reconnects: u32,
    pub last_error: Option<String>,
    pub since: SystemTime,
}
