//! The dashboard's security rules, as a tower layer in front of every route:
//!
//! 1. `Host` must name this listener (`127.0.0.1:PORT`, `localhost:PORT`,
//!    `[::1]:PORT`), else 403: a page from a rebound DNS name cannot talk to us.
//! 2. A request carrying `Origin` must come from the dashboard's own origin, and every
//!    request that is not GET/HEAD (all gRPC-web calls are POST) must carry it,
//!    else 403: another site's page cannot call the API or open a stream.
//! 3. Every path except `/healthz`, `/readyz` and `/auth` needs the session cookie,
//!    else 401 with an empty body: a request without it learns nothing.

use std::task::{Context, Poll};

use axum::body::Body;
use futures::future::{Either, Ready};
use http::{header, HeaderMap, Method, Request, Response, StatusCode};

use super::auth::{Secret, COOKIE};

/// Paths served without the session cookie.
const PUBLIC: [&str; 3] = ["/healthz", "/readyz", "/auth"];

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ForeignHost,
    ForeignOrigin,
    MissingOrigin,
    NoSession,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Self::ForeignHost | Self::ForeignOrigin | Self::MissingOrigin => StatusCode::FORBIDDEN,
            Self::NoSession => StatusCode::UNAUTHORIZED,
        }
    }
}

/// The rules for one listener.
#[derive(Debug, Clone)]
pub struct Policy {
    hosts: [String; 3],
    origins: [String; 2],
    session: Secret,
}

impl Policy {
    pub fn new(port: u16, session: Secret) -> Self {
        Self {
            hosts: [
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ],
            origins: [
                format!("http://127.0.0.1:{port}"),
                format!("http://localhost:{port}"),
            ],
            session,
        }
    }

    pub fn check<B>(&self, req: &Request<B>) -> Result<(), Refusal> {
        let headers = req.headers();
        let host = single(headers, header::HOST).ok_or(Refusal::ForeignHost)?;
        // An absolute-form request target names the host too; both must be ours.
        let authority_ok = req
            .uri()
            .authority()
            .is_none_or(|a| self.hosts.iter().any(|h| h == a.as_str()));
        if !authority_ok || !self.hosts.iter().any(|h| h == host) {
            return Err(Refusal::ForeignHost);
        }
        match headers.get_all(header::ORIGIN).iter().count() {
            0 if !matches!(*req.method(), Method::GET | Method::HEAD) => {
                return Err(Refusal::MissingOrigin)
            }
            0 => {}
            _ => {
                let origin = single(headers, header::ORIGIN).ok_or(Refusal::ForeignOrigin)?;
                if !self.origins.iter().any(|o| o == origin) {
                    return Err(Refusal::ForeignOrigin);
                }
            }
        }
        if PUBLIC.contains(&req.uri().path()) || self.has_session(headers) {
            Ok(())
        } else {
            Err(Refusal::NoSession)
        }
    }

    fn has_session(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == COOKIE && self.session.matches(value))
    }
}

/// The value of a header that occurs exactly once, as text.
fn single(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// The layer: refused requests never reach a route.
#[derive(Debug, Clone)]
pub struct Guard {
    policy: Policy,
}

impl Guard {
    pub fn new(policy: Policy) -> Self {
        Self { policy }
    }
}

impl<S> tower::Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    policy: Policy,
}

impl<S, B> tower::Service<Request<B>> for Guarded<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.policy.check(&req) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(refusal) => {
                tracing::debug!(?refusal, method = %req.method(), path = req.uri().path(), "dashboard request refused");
                Either::Left(futures::future::ready(Ok(super::empty(refusal.status()))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer as _, ServiceExt as _};

    const PORT: u16 = 7420;

    fn policy() -> (Policy, Secret) {
        let session = Secret::random().unwrap();
        (Policy::new(PORT, session.clone()), session)
    }

    fn req(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn cookie(s: &Secret) -> String {
        format!("other=1; {COOKIE}={}", s.expose())
    }

    #[test]
    fn host_must_name_this_listener_on_every_path() {
        let (p, s) = policy();
        let c = cookie(&s);
        for host in ["127.0.0.1:7420", "localhost:7420", "[::1]:7420"] {
            let r = req(Method::GET, "/", &[("host", host), ("cookie", &c)]);
            assert_eq!(p.check(&r), Ok(()), "{host}");
        }
        for path in ["/", "/healthz", "/readyz", "/auth?token=x"] {
            for host in [
                "evil.example:7420",
                "127.0.0.1:7421",
                "127.0.0.1",
                "localhost",
            ] {
                let r = req(Method::GET, path, &[("host", host), ("cookie", &c)]);
                assert_eq!(p.check(&r), Err(Refusal::ForeignHost), "{host} {path}");
            }
            let r = req(Method::GET, path, &[("cookie", &c)]);
            assert_eq!(p.check(&r), Err(Refusal::ForeignHost), "no host {path}");
            let r = req(
                Method::GET,
                path,
                &[
                    ("host", "127.0.0.1:7420"),
                    ("host", "evil.example"),
                    ("cookie", &c),
                ],
            );
            assert_eq!(p.check(&r), Err(Refusal::ForeignHost), "two hosts {path}");
        }
        let r = req(
            Method::GET,
            "http://evil.example:7420/",
            &[("host", "127.0.0.1:7420"), ("cookie", &c)],
        );
        assert_eq!(
            p.check(&r),
            Err(Refusal::ForeignHost),
            "absolute-form target"
        );
    }

    #[test]
    fn non_get_needs_our_origin() {
        let (p, s) = policy();
        let c = cookie(&s);
        let path = "/devenv.v1.DaemonService/Version";
        let host = ("host", "127.0.0.1:7420");
        for origin in ["http://127.0.0.1:7420", "http://localhost:7420"] {
            let r = req(
                Method::POST,
                path,
                &[host, ("origin", origin), ("cookie", &c)],
            );
            assert_eq!(p.check(&r), Ok(()), "{origin}");
        }
        let r = req(Method::POST, path, &[host, ("cookie", &c)]);
        assert_eq!(p.check(&r), Err(Refusal::MissingOrigin));
        for origin in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:7421",
            "https://127.0.0.1:7420",
            "http://127.0.0.1:7420.evil.example",
        ] {
            let r = req(
                Method::POST,
                path,
                &[host, ("origin", origin), ("cookie", &c)],
            );
            assert_eq!(p.check(&r), Err(Refusal::ForeignOrigin), "{origin}");
        }
        // Also a GET that says where it comes from, and on public paths.
        let r = req(
            Method::GET,
            "/healthz",
            &[host, ("origin", "http://evil.example")],
        );
        assert_eq!(p.check(&r), Err(Refusal::ForeignOrigin));
        let r = req(Method::POST, "/healthz", &[host]);
        assert_eq!(p.check(&r), Err(Refusal::MissingOrigin));
        let r = req(
            Method::POST,
            path,
            &[
                host,
                ("origin", "http://127.0.0.1:7420"),
                ("origin", "http://evil.example"),
                ("cookie", &c),
            ],
        );
        assert_eq!(p.check(&r), Err(Refusal::ForeignOrigin), "two origins");
    }

    #[test]
    fn everything_but_health_and_auth_needs_the_session() {
        let (p, s) = policy();
        let host = ("host", "localhost:7420");
        for path in ["/healthz", "/readyz?env=x", "/auth?token=nope"] {
            assert_eq!(p.check(&req(Method::GET, path, &[host])), Ok(()), "{path}");
        }
        for path in [
            "/",
            "/assets/app.js",
            "/nope",
            "/healthz/x",
            "/devenv.v1.X/Y",
        ] {
            assert_eq!(
                p.check(&req(Method::GET, path, &[host])),
                Err(Refusal::NoSession),
                "{path}"
            );
        }
        let other = Secret::random().unwrap();
        for bad in [
            format!("{COOKIE}={}", other.expose()),
            format!("{COOKIE}="),
            format!("x{COOKIE}={}", s.expose()),
            format!("{COOKIE}={}x", s.expose()),
        ] {
            let r = req(Method::GET, "/", &[host, ("cookie", &bad)]);
            assert_eq!(p.check(&r), Err(Refusal::NoSession), "{bad}");
        }
        let r = req(
            Method::GET,
            "/",
            &[host, ("cookie", "a=b"), ("cookie", &cookie(&s))],
        );
        assert_eq!(p.check(&r), Ok(()), "second cookie header");
    }

    #[tokio::test]
    async fn the_layer_answers_refusals_with_an_empty_body() {
        let (p, _) = policy();
        let inner = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::from("secret stuff")))
        });
        let svc = Guard::new(p).layer(inner);
        let r = Request::builder()
            .uri("/")
            .header("host", "127.0.0.1:7420")
            .body(Body::empty())
            .unwrap();
        let resp = svc.clone().oneshot(r).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert!(body.is_empty());
        let r = Request::builder()
            .uri("/healthz")
            .header("host", "127.0.0.1:7420")
            .body(Body::empty())
            .unwrap();
        let resp = svc.oneshot(r).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
