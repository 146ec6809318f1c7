//! The devenv engine. Knows nothing of gRPC: the daemon maps its RPCs onto this.
//!
//! - [`config`]: find, layer, interpolate and check `.devenv/config.yml`.
//! - [`engine`]: environments, the dependency graph, service supervisors.
//! - [`logs`]: the log hub every service writes into and every client reads from.
//! - [`process`]: spawning host processes that never outlive the daemon.
//! - [`probe`]: readiness probes.
//! - [`ports`]: who listens on a local port (from /proc).
//! - [`presets`]: `type: postgresql|redis` as local processes, and their contract.
//! - [`state`]: what the daemon knows, persisted in sled.
//! - [`scratch`]: private temp files under the data dir.
//! - [`terraform`]: terraform's command lines and what devenv reads back from it.

pub mod config;
pub mod docker;
pub mod engine;
pub mod kube;
pub mod logs;
pub mod ports;
pub mod presets;
pub mod probe;
pub mod process;
pub mod scratch;
pub mod secrets;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod sync;
pub mod terraform;
pub mod volumes;
pub mod watch;
