//! The per-daemon secrets and the token -> cookie exchange at `/auth`.
//!
//! The token is what `devenv dashboard` hands out (over the Unix socket only); the
//! page never keeps it: `/auth` swaps it for the session cookie, HttpOnly (no script
//! reads it) and SameSite=Strict (no other site's page sends it). Both are random,
//! held in memory only, and new with every daemon start.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse as _, Response};
use http::{header, HeaderValue, StatusCode};

use super::WebState;

/// Name of the session cookie.
pub const COOKIE: &str = "devenv_session";

/// A random secret: 32 bytes from the OS, hex. Never printed by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where `given` differs, so timing tells an
    /// attacker nothing about the secret.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct AuthQuery {
    #[serde(default)]
    token: String,
}

/// `GET /auth?token=T`: a valid token sets the session cookie and sends the browser
/// to `/` (so the token leaves the address bar and history); anything else is 401
/// with an empty body.
pub async fn exchange(
    State(web): State<Arc<WebState>>,
    query: Result<Query<AuthQuery>, QueryRejection>,
) -> Response {
    let valid = query.is_ok_and(|Query(q)| web.token.matches(&q.token));
    if !valid {
        return super::empty(StatusCode::UNAUTHORIZED);
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        web.session.expose()
    );
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    match HeaderValue::from_str(&cookie) {
        Ok(v) => {
            h.insert(header::SET_COOKIE, v);
        }
        // Hex never fails; if it did, no cookie means 401 on the next request.
        Err(_) => return super::empty(StatusCode::INTERNAL_SERVER_ERROR),
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_hex_and_compare_exactly() {
        let a = Secret::random().unwrap();
        let b = Secret::random().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
        assert!(a.matches(a.expose()));
        assert!(!a.matches(b.expose()));
        assert!(!a.matches(""));
        assert!(!a.matches(&a.expose()[..63]));
        assert_eq!(format!("{a:?}"), "Secret(..)");
    }
}
