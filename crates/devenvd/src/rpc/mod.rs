//! gRPC handlers: thin mappings from the API onto the engine.

pub mod cluster;
pub mod daemon;
pub mod environment;
pub mod forward;
pub mod logs;
pub mod service;
pub mod span;
pub mod sync;

use std::pin::Pin;

pub use span::record;

/// Server-streaming response type used by every streaming RPC.
pub type ResponseStream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;
