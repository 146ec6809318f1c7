//! The web dashboard: devenvd serves the page and the devenv.v1 API (as gRPC-web,
//! through tonic-web, backed by the same service implementations as the Unix
//! socket) on 127.0.0.1. The security model (token -> cookie, Host and Origin
//! checks) is in `guard` and `auth`, and described in docs/dashboard.md.

mod assets;
pub mod auth;
mod guard;
mod health;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use devenv_core::engine::Engine;
use http::{header, HeaderValue, StatusCode};
use tokio_util::sync::CancellationToken;

pub use auth::Secret;
pub use guard::{Guard, Policy};

/// The port the dashboard listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7420;

/// Where the dashboard stands, for the `Dashboard` RPC and `devenv daemon status`.
#[derive(Debug, Clone)]
pub enum Dashboard {
    Serving {
        port: u16,
        token: Secret,
    },
    /// Not served: why, and what to do about it, as a sentence for the user.
    Off(String),
}

impl Dashboard {
    /// The URL that logs a browser in: `http://127.0.0.1:PORT/auth?token=T`.
    pub fn login_url(&self) -> Option<String> {
        match self {
            Self::Serving { port, token } => Some(format!(
                "http://127.0.0.1:{port}/auth?token={}",
                token.expose()
            )),
            Self::Off(_) => None,
        }
    }
}

/// What the flags and the config file ask for.
#[derive(Debug, Clone)]
pub enum Wanted {
    /// Not served; the reason says by what (`--no-dashboard`, the config file).
    Disabled(String),
    Port {
        port: u16,
        /// Where the port was chosen, for the message when it is taken.
        from: String,
        /// The daemon's config file, named in the fix.
        config_file: PathBuf,
    },
}

/// A bound listener with this daemon start's secrets.
#[derive(Debug)]
pub struct Bound {
    listener: std::net::TcpListener,
    port: u16,
    token: Secret,
    session: Secret,
}

/// Binds 127.0.0.1:PORT as `wanted` says, with the session secret kept in
/// `session_file` (see [`auth::stored_session`]). Never fails the daemon: a taken port
/// or a missing source of randomness leaves the dashboard off, saying why.
pub fn bind(wanted: &Wanted, session_file: &Path) -> (Dashboard, Option<Bound>) {
    let (port, from, config_file) = match wanted {
        Wanted::Disabled(why) => return (Dashboard::Off(why.clone()), None),
        Wanted::Port {
            port,
            from,
            config_file,
        } => (*port, from, config_file),
    };
    let fix = format!(
        "choose another port with `dashboard.port` in {} or `devenvd --dashboard-port N` \
         (0: any free port), then restart devenvd (`devenv daemon stop`; the next devenv \
         command starts it again)",
        config_file.display()
    );
    let listener = match std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let holder = devenv_core::ports::holder(port)
                .map(|h| format!(" by {h}"))
                .unwrap_or_else(|| " by another program".into());
            return (
                Dashboard::Off(format!(
                    "the dashboard is unavailable: port {port} on 127.0.0.1 ({from}) is taken{holder}; \
                     stop that program, or {fix}"
                )),
                None,
            );
        }
        Err(e) => {
            return (
                Dashboard::Off(format!(
                    "the dashboard is unavailable: cannot listen on 127.0.0.1:{port} ({from}): {e}; {fix}"
                )),
                None,
            )
        }
    };
    let bound = (|| {
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let secret = |_| std::io::Error::other("no randomness from the OS for the dashboard token");
        let session = match auth::stored_session(session_file) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "dashboard session file {}: {e}; open pages will need `devenv dashboard` again after a restart",
                    session_file.display()
                );
                Secret::random().map_err(secret)?
            }
        };
        Ok::<_, std::io::Error>(Bound {
            port,
            token: Secret::random().map_err(secret)?,
            session,
            listener,
        })
    })();
    match bound {
        Ok(b) => (
            Dashboard::Serving {
                port: b.port,
                token: b.token.clone(),
            },
            Some(b),
        ),
        Err(e) => (
            Dashboard::Off(format!("the dashboard is unavailable: {e}")),
            None,
        ),
    }
}

/// What the routes need.
#[derive(Debug)]
pub struct WebState {
    token: Secret,
    session: Secret,
    engine: Arc<Engine>,
}

/// The gRPC-web paths: each of `services` (`devenv.v1.Name`) whole, plus single
/// methods (`devenv.v1.DaemonService/Version`). Nothing else of `grpc` is reachable.
#[derive(Debug)]
pub struct Api {
    pub grpc: tonic::service::Routes,
    pub services: Vec<&'static str>,
    pub methods: Vec<&'static str>,
}

/// Every route behind the guard.
pub fn router(port: u16, state: Arc<WebState>, api: Api) -> axum::Router {
    let grpc_web = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebLayer::new())
        // The same span per RPC as on the socket.
        .layer(crate::rpc::span::RpcSpanLayer)
        .service(api.grpc);
    let mut router = axum::Router::new()
        .route("/auth", get(auth::exchange))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/", get(assets::serve));
    for name in api.services {
        router = router.route_service(&format!("/{name}/{{method}}"), grpc_web.clone());
    }
    for path in api.methods {
        router = router.route_service(&format!("/{path}"), grpc_web.clone());
    }
    let policy = Policy::new(port, state.session.clone());
    router
        // Any other GET is a file of the bundle (or 404); any other POST is not ours.
        .fallback(|method: http::Method, uri: http::Uri| async move {
            if matches!(method, http::Method::GET | http::Method::HEAD) {
                assets::serve(uri).await
            } else {
                empty(StatusCode::NOT_FOUND)
            }
        })
        .with_state(state)
        .layer(Guard::new(policy))
}

/// Serves until `shutdown`, then lets open requests finish (the caller bounds that).
pub async fn serve(
    bound: Bound,
    engine: Arc<Engine>,
    api: Api,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let port = bound.port;
    let state = Arc::new(WebState {
        token: bound.token,
        session: bound.session,
        engine,
    });
    // No Nagle: a Watch change is one small write on a long-lived response, and one sent
    // right after another (stopping, starting, ready) would wait for the browser's
    // delayed ACK (docs/benchmarks.md, "Dashboard").
    let listener = tokio::net::TcpListener::from_std(bound.listener)?.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("dashboard connection: TCP_NODELAY: {e}");
        }
    });
    tracing::info!("dashboard on http://127.0.0.1:{port}/ (`devenv dashboard` opens it)");
    axum::serve(listener, router(port, state, api))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// A response with `status` and nothing else to learn from.
fn empty(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
