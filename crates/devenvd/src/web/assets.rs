//! The dashboard page: files of crates/devenvd/dashboard/, embedded at compile time
//! by build.rs, served with a strict content security policy.

use axum::response::{IntoResponse as _, Response};
use http::{header, HeaderValue, StatusCode, Uri};

include!(concat!(env!("OUT_DIR"), "/dashboard_files.rs"));

/// Scripts and styles only from files of the bundle: no inline script, nothing
/// fetched from elsewhere, never framed.
const CSP: &str = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'";

/// The embedded file at `path` (relative to dashboard/).
pub fn find(path: &str) -> Option<&'static [u8]> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// `GET /` (index.html) and `GET /<file>` of the bundle; 404 otherwise.
pub async fn serve(uri: Uri) -> Response {
    let path = match uri.path().trim_start_matches('/') {
        "" => "index.html",
        p => p,
    };
    let Some(bytes) = find(path) else {
        return super::empty(StatusCode::NOT_FOUND);
    };
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    // Revalidate every time: a daemon upgrade must never leave an old script running
    // against a new API, and on localhost the bytes cost nothing.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_directory_is_embedded() {
        let index = find("index.html").expect("dashboard/index.html is embedded");
        assert!(String::from_utf8_lossy(index).contains("<html"));
        // Every file of the directory, none listed by hand.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard/assets");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.starts_with('.') {
                assert!(find(&format!("assets/{name}")).is_some(), "{name}");
            }
        }
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/app.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("assets/x"), "application/octet-stream");
    }

    #[tokio::test]
    async fn index_has_the_policy_and_no_cache() {
        let resp = serve(Uri::from_static("/")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert!(h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'"));
        assert_eq!(
            serve(Uri::from_static("/assets/nope.js")).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            serve(Uri::from_static("/../Cargo.toml")).await.status(),
            StatusCode::NOT_FOUND
        );
    }
}
