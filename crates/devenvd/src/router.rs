//! The local HTTP router: `http://SERVICE.ENV.localhost:PORT` on 127.0.0.1 reaches the
//! service (`devenv_core::engine::local_port`: a local process's port, a kubernetes
//! service's forward). Browsers and curl resolve `*.localhost` to loopback themselves.
//!
//! A reverse proxy over hyper: requests and responses stream through as they come
//! (server-sent events, chunked downloads), `Upgrade` requests (WebSocket) are joined
//! to the upstream's upgraded connection byte for byte. The Host header is parsed
//! strictly (two DNS labels before `.localhost`, nothing else); any other host gets a
//! page listing the services it can reach. Upstream connections are pooled.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use devenv_core::engine::{Engine, Route};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The router's port unless told otherwise.
pub const DEFAULT_PORT: u16 = 7480;
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 1024;
/// A client must send its request head within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

type Body = BoxBody<Bytes, hyper::Error>;

/// The router, listening: what `status` shows as each service's URL.
#[derive(Debug, Clone)]
pub enum RouterState {
    Serving { port: u16 },
    Off(String),
}

impl RouterState {
    /// `http://SERVICE.ENV.localhost:PORT/` when serving.
    pub fn url(&self, environment: &str, service: &str) -> Option<String> {
        match self {
            Self::Serving { port } => Some(url(environment, service, *port)),
            Self::Off(_) => None,
        }
    }
}

fn url(environment: &str, service: &str, port: u16) -> String {
    format!("http://{service}.{environment}.localhost:{port}/")
}

/// Binds 127.0.0.1:`port` (0: any free port). Never fails the daemon: a taken port
/// leaves the router off, saying why.
pub fn bind(port: Option<u16>) -> (RouterState, Option<std::net::TcpListener>) {
    let Some(port) = port else {
        return (
            RouterState::Off("the router is disabled (devenvd --no-router)".into()),
            None,
        );
    };
    let bound = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .and_then(|l| {
            l.set_nonblocking(true)?;
            let port = l.local_addr()?.port();
            Ok((l, port))
        });
    match bound {
        Ok((l, port)) => (RouterState::Serving { port }, Some(l)),
        Err(e) => {
            let holder = devenv_core::ports::holder(port)
                .map(|h| format!(" (held by {h})"))
                .unwrap_or_default();
            (
                RouterState::Off(format!(
                    "the local router is unavailable: cannot listen on 127.0.0.1:{port}{holder}: {e}; \
                     choose another with `devenvd --router-port N` or DEVENV_ROUTER_PORT (0: any free port)"
                )),
                None,
            )
        }
    }
}

struct Router {
    engine: Arc<Engine>,
    client: Client<HttpConnector, Body>,
    port: u16,
}

/// Serves until `shutdown`; connections still open then get `drain` to finish.
pub async fn serve(
    listener: std::net::TcpListener,
    engine: Arc<Engine>,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let port = listener.local_addr()?.port();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(32)
        .build(connector);
    let router = Arc::new(Router {
        engine,
        client,
        port,
    });
    let tasks = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("router accept: {e}");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let router = router.clone();
                async move { Ok::<_, std::convert::Infallible>(router.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("router connection: {e}");
                    }
                }
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(drain, tasks.wait()).await;
    Ok(())
}

impl Router {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let Some((service, environment)) = host_of(&req) else {
            return self.index(
                StatusCode::NOT_FOUND,
                "This host is not a service's address.",
            );
        };
        let Some(route) = self.engine.route(&environment, &service) else {
            return self.index(
                StatusCode::NOT_FOUND,
                &format!("No service `{service}` in an environment `{environment}` here."),
            );
        };
        self.forward(req, &route).await
    }

    async fn forward(&self, mut req: Request<Incoming>, route: &Route) -> Response<Body> {
        let upgrade = wants_upgrade(req.headers());
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let Ok(uri) = format!("http://127.0.0.1:{}{path}", route.port).parse::<Uri>() else {
            return text(StatusCode::BAD_REQUEST, "bad request target\n");
        };
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        parts.uri = uri;
        strip_hop_by_hop(&mut parts.headers, upgrade);
        if let Some(host) = parts.headers.get(header::HOST).cloned() {
            parts.headers.insert("x-forwarded-host", host);
        }
        parts
            .headers
            .insert("x-forwarded-proto", HeaderValue::from_static("http"));
        let upstream = Request::from_parts(parts, body.boxed());
        let mut resp = match self.client.request(upstream).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(service = %route.service, "router upstream: {e}");
                return text(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "{}.{} ({}) does not answer on 127.0.0.1:{}; `devenv status` says why\n",
                        route.service,
                        route.environment,
                        state_word(route.state),
                        route.port
                    ),
                );
            }
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    let (Ok(client), Ok(upstream)) = tokio::join!(client_upgrade, upstream_upgrade)
                    else {
                        return;
                    };
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
            let (parts, _) = resp.into_parts();
            return Response::from_parts(parts, empty());
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        Response::from_parts(parts, body.boxed())
    }

    /// The page for a host that names no service: every address the router knows.
    fn index(&self, status: StatusCode, why: &str) -> Response<Body> {
        let routes = self.engine.routes();
        let mut html = String::from(
            "<!doctype html><meta charset=utf-8><title>devenv router</title>\
             <h1>devenv: local router</h1>",
        );
        html.push_str(&format!("<p>{}</p>", escape(why)));
        if routes.is_empty() {
            html.push_str(
                "<p>No service with a port is known to devenvd; run <code>devenv up</code>.</p>",
            );
        } else {
            html.push_str("<ul>");
            for r in &routes {
                let u = url(&r.environment, &r.service, self.port);
                html.push_str(&format!(
                    "<li><a href=\"{0}\">{0}</a> ({1})</li>",
                    escape(&u),
                    state_word(r.state)
                ));
            }
            html.push_str("</ul>");
        }
        let mut resp = Response::new(full(html));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        resp
    }
}

/// `(service, environment)` of a `SERVICE.ENV.localhost[:PORT]` Host (the request's
/// Host header, or an absolute-form target's authority): exactly two DNS labels before
/// `localhost`, case-insensitive, an optional trailing dot and a numeric port. Anything
/// else (more labels, an IP, userinfo, junk) is no service.
pub fn host_of<B>(req: &Request<B>) -> Option<(String, String)> {
    let host = match req.uri().authority() {
        Some(a) => a.as_str().to_owned(),
        None => req.headers().get(header::HOST)?.to_str().ok()?.to_owned(),
    };
    parse_host(&host)
}

pub fn parse_host(host: &str) -> Option<(String, String)> {
    let host = host.to_ascii_lowercase();
    let name = match host.rsplit_once(':') {
        Some((name, port)) => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
                return None;
            }
            name
        }
        None => &host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let rest = name.strip_suffix(".localhost")?;
    let (service, environment) = rest.split_once('.')?;
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (label(service) && label(environment)).then(|| (service.to_owned(), environment.to_owned()))
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Drops the headers that belong to one hop (RFC 9110 7.6.1), keeping `Connection:
/// upgrade` and `Upgrade` on an upgrade request.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !(upgrade && t == "upgrade"))
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for h in [
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
    ] {
        headers.remove(h);
    }
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

fn state_word(s: devenv_core::status::ServiceState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn full(s: String) -> Body {
    Full::new(Bytes::from(s))
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> Body {
    full(String::new())
}

fn text(status: StatusCode, s: &str) -> Response<Body> {
    let mut resp = Response::new(full(s.to_owned()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_two_labels_before_localhost_and_nothing_else() {
        let ok = |h: &str| parse_host(h).map(|(s, e)| format!("{s}.{e}"));
        assert_eq!(ok("api.shop.localhost:7480").as_deref(), Some("api.shop"));
        assert_eq!(ok("API.Shop.LOCALHOST").as_deref(), Some("api.shop"));
        assert_eq!(ok("api.shop.localhost.:80").as_deref(), Some("api.shop"));
        for bad in [
            "localhost:7480",
            "shop.localhost",
            "a.b.shop.localhost",
            "api.shop.localhost:",
            "api.shop.localhost:80x",
            "api.shop.localhost:123456",
            "api.shop.example.com",
            "127.0.0.1:7480",
            "api_x.shop.localhost",
            "-api.shop.localhost",
            "user@api.shop.localhost",
            "api..localhost",
            "api.shop.localhost.evil",
        ] {
            assert_eq!(ok(bad), None, "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_headers_go_upgrade_headers_stay_on_an_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, x-private"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        assert!(wants_upgrade(&h));
        let mut up = h.clone();
        strip_hop_by_hop(&mut up, true);
        assert!(up.contains_key(header::UPGRADE) && up.contains_key(header::CONNECTION));
        assert!(!up.contains_key("x-private") && !up.contains_key("keep-alive"));
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key(header::UPGRADE) && !h.contains_key(header::CONNECTION));
    }
}
