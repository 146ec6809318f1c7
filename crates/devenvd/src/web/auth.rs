//! The per-daemon secrets and the token -> cookie exchange at `/auth`.
//!
//! The token is what `devenv dashboard` hands out (over the Unix socket only); the
//! page never keeps it: `/auth` swaps it for the session cookie, HttpOnly (no script
//! reads it) and SameSite=Strict (no other site's page sends it). Both are random,
//! held in memory only, and new with every daemon start.

use std::path::Path;
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

/// File name of the stored session secret, in the data dir.
pub const SESSION_FILE: &str = "dashboard-session";

/// The session secret kept in `path` (0600, in the private data dir), so that an open
/// page stays logged in when devenvd restarts (issue 13: the page resumes after a
/// restart by itself). The login URL's token is still new with every start. A missing
/// or malformed file gets a new secret; a symlink there is refused (O_NOFOLLOW).
/// Deleting the file logs every browser out at the next start.
pub fn stored_session(path: &Path) -> std::io::Result<Secret> {
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        // Only a private file of ours is trusted; anything else gets a new secret.
        Ok(f)
            if f.metadata().is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt as _;
                m.is_file() && m.mode() & 0o077 == 0 && m.uid() == nix::unistd::getuid().as_raw()
            }) =>
        {
            let mut text = String::new();
            f.take(128).read_to_string(&mut text)?;
            let text = text.trim();
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(Secret(text.to_owned()));
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let secret = Secret::random()
        .map_err(|_| std::io::Error::other("no randomness from the OS for the session"))?;
    // Written whole under another name, then renamed: a crash never leaves half a secret.
    let tmp = path.with_extension("new");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(secret.0.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(secret)
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

    #[test]
    fn the_session_is_kept_across_starts_in_a_private_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SESSION_FILE);
        let first = stored_session(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = stored_session(&path).unwrap();
        assert!(again.matches(first.expose()), "the next start reuses it");
        std::fs::write(&path, "not a secret").unwrap();
        let fresh = stored_session(&path).unwrap();
        assert!(
            !fresh.matches(first.expose()),
            "a malformed file is replaced"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), fresh.expose());
        // A well-formed secret others could read is not trusted either.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let private = stored_session(&path).unwrap();
        assert!(
            !private.matches(fresh.expose()),
            "a readable file is replaced"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_symlink_at_the_session_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "a".repeat(64)).unwrap();
        let path = dir.path().join(SESSION_FILE);
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(stored_session(&path).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "a".repeat(64));
    }
}
