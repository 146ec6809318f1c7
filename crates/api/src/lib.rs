//! The devenv API as every client sees it: generated gRPC types and stubs, where the
//! daemon's socket and files live, and how to connect.

mod client;
mod paths;
pub mod trust;

pub use client::{connect, ConnectError};
pub use paths::{ensure_private_dir, Env, Paths, PathsError, ProcessEnv};
pub use trust::TrustError;

/// Bumped on incompatible API changes. Clients compare it with `VersionResponse`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The daemon's version, shared by every binary built from this workspace.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Generated code for package `devenv.v1`.
#[allow(clippy::all, missing_docs, reason = "generated code")]
pub mod pb {
    tonic::include_proto!("devenv.v1");

    /// Encoded descriptor set of the API, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/devenv_descriptor.bin"));
}

impl pb::ServiceState {
    /// Lower-case name as shown to people and in `--json` output.
    pub fn label(self) -> &'static str {
        use pb::ServiceState as S;
        match self {
            S::Unspecified => "unknown",
            S::Pending => "pending",
            S::Starting => "starting",
            S::Ready => "ready",
            S::Unhealthy => "unhealthy",
            S::Failed => "failed",
            S::Stopping => "stopping",
            S::Stopped => "stopped",
            S::Completed => "completed",
        }
    }
}
