//! A tracing span per RPC: `rpc{method=/devenv.v1.EnvironmentService/Up environment=..
//! service=..}`. The layer opens it around every call (the handler runs inside it, so
//! the engine's log lines carry it); the handler fills in the environment and the
//! services once it has read them from the request ([`record`]).

use std::task::{Context, Poll};

use devenv_core::engine::ProjectRef;
use tonic::codegen::http::Request;
use tracing::field::Empty;
use tracing::instrument::{Instrument, Instrumented};

/// The layer that gives each request its span.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcSpanLayer;

impl<S> tower::Layer<S> for RpcSpanLayer {
    type Service = RpcSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcSpan { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcSpan<S> {
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for RpcSpan<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let span = tracing::info_span!(
            "rpc",
            method = %req.uri().path(),
            environment = Empty,
            service = Empty,
        );
        let _entered = span.enter();
        self.inner.call(req).instrument(span.clone())
    }
}

/// Names the environment (its project dir, `#name` with `--env`) and the services a
/// request is about in the current RPC's span.
pub fn record(env: &ProjectRef, services: &[String]) {
    let span = tracing::Span::current();
    let project = env.start_dir.display();
    match &env.env_name {
        Some(name) => span.record(
            "environment",
            tracing::field::display(format_args!("{project}#{name}")),
        ),
        None => span.record("environment", tracing::field::display(project)),
    };
    if !services.is_empty() {
        span.record("service", tracing::field::display(services.join(",")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_handler_runs_in_the_rpc_span() {
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry());
        let handler = tower::service_fn(|_: Request<()>| async {
            let current = tracing::Span::current();
            Ok::<_, std::convert::Infallible>(current.metadata().map(|m| m.name()))
        });
        let svc = tower::Layer::layer(&RpcSpanLayer, handler);
        let req = Request::builder()
            .uri("/devenv.v1.EnvironmentService/Up")
            .body(())
            .expect("a request");
        let seen = tower::ServiceExt::oneshot(svc, req)
            .await
            .expect("infallible");
        assert_eq!(seen, Some("rpc"));
    }
}
