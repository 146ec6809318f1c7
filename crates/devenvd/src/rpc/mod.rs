//! gRPC handlers: thin mappings from the API onto the engine.

pub mod cluster;
pub mod daemon;
pub mod environment;
pub mod forward;
pub mod logs;
pub mod service;
pub mod snapshot;
pub mod span;
pub mod sync;
pub mod terraform;
pub mod workspace;

use std::pin::Pin;

pub use span::record;

/// The runtime an environment-wide read (status, watch, forwards) works on: the
/// reference resolved, recorded on the RPC's span, and the environment registered if
/// the daemon did not know it yet.
pub fn runtime(
    engine: &devenv_core::engine::Engine,
    r: Option<devenv_api::pb::EnvironmentRef>,
) -> Result<std::sync::Arc<devenv_core::engine::LiveEnv>, tonic::Status> {
    let env = crate::convert::env_request(engine, r)?;
    record(&env, &[]);
    engine
        .find_or_register(&env)
        .map_err(crate::convert::status)
}

/// Server-streaming response type used by every streaming RPC.
pub type ResponseStream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;
