//! The daemon's HTTP side as a browser would meet it: raw HTTP/1.0 over TCP (every
//! header under the test's control, including a forged Host), the login URL from
//! `devenv dashboard`, and gRPC-web framing by hand.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::TestEnv;

/// What `devenv dashboard --json --no-open` reported.
#[derive(Debug, Clone)]
pub struct DashboardInfo {
    /// `http://127.0.0.1:PORT/auth?token=T`
    pub url: String,
    pub port: u16,
}

impl DashboardInfo {
    /// `/auth?token=T`, the path part of the login URL.
    pub fn auth_path(&self) -> String {
        let at = self.url.find("/auth").expect("login URL has /auth");
        self.url[at..].to_string()
    }

    /// The Host header the daemon accepts.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The page's own origin.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl TestEnv {
    /// The running (or started) daemon's dashboard; panics unless it is served.
    pub fn dashboard(&self) -> DashboardInfo {
        let out = self.devenv_ok(&["dashboard", "--json", "--no-open"]);
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("dashboard --json is not JSON ({e})\n{out}"));
        let url = v["url"].as_str().unwrap_or_else(|| panic!("no url\n{out}"));
        let port = v["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("no port\n{out}"));
        DashboardInfo {
            url: url.to_string(),
            port: u16::try_from(port).expect("port fits u16"),
        }
    }
}

/// One HTTP response, whole.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Every value of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).first().copied()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one HTTP/1.0 request to 127.0.0.1:`port` with exactly `headers` (no Host
/// unless given) and reads the response to the end (the server closes).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to the dashboard on {port}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("set read timeout");
    let mut head = format!("{method} {path} HTTP/1.0\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).expect("send request head");
    conn.write_all(body).expect("send request body");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read the response to {method} {path}: {e}"));
    parse(&raw).unwrap_or_else(|| {
        panic!(
            "malformed response to {method} {path}: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse(raw: &[u8]) -> Option<RawResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(RawResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// A gRPC-web message frame: flag 0, 4-byte big-endian length, the message.
pub fn grpc_web_frame(message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).expect("message fits a frame");
    let mut out = vec![0u8];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// A gRPC-web response body split into its message frames and its trailers
/// (the frame with flag 0x80, `name: value` lines, names lowercased).
pub fn grpc_web_parse(body: &[u8]) -> (Vec<Vec<u8>>, Vec<(String, String)>) {
    let mut messages = Vec::new();
    let mut trailers = Vec::new();
    let mut rest = body;
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        assert!(rest.len() >= 5 + len, "truncated gRPC-web frame");
        let payload = &rest[5..5 + len];
        if flag & 0x80 != 0 {
            for line in String::from_utf8_lossy(payload).split("\r\n") {
                if let Some((k, v)) = line.split_once(':') {
                    trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
        } else {
            messages.push(payload.to_vec());
        }
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty(), "trailing bytes after the last frame");
    (messages, trailers)
}

/// Logs in like a browser opening the login URL; returns the `Cookie` header value.
pub fn login(d: &DashboardInfo) -> String {
    let resp = request(d.port, "GET", &d.auth_path(), &[("Host", &d.host())], b"");
    assert_eq!(resp.status, 303, "token exchange: {resp:?}");
    let set = resp.header("set-cookie").expect("Set-Cookie on login");
    set.split(';')
        .next()
        .expect("cookie pair")
        .trim()
        .to_string()
}

/// Calls `/<service>/<method>` over gRPC-web as the page does (cookie + Origin).
pub fn grpc_web_call(d: &DashboardInfo, cookie: &str, path: &str, message: &[u8]) -> RawResponse {
    let origin = d.origin();
    request(
        d.port,
        "POST",
        path,
        &[
            ("Host", &d.host()),
            ("Origin", &origin),
            ("Cookie", cookie),
            ("Content-Type", "application/grpc-web+proto"),
            ("X-Grpc-Web", "1"),
        ],
        &grpc_web_frame(message),
    )
}
