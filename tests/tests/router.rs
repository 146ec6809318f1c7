//! The local HTTP router: `http://SERVICE.ENV.localhost:PORT` reaches a local service
//! by name through the real daemon, a streamed response arrives while it is still
//! being written, a WebSocket upgrade passes through (echo), an unknown host gets the
//! page of known addresses, and `status --json` shows the URL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use devenv_e2e::{free_ports, TestEnv};

/// A tiny upstream on the standard library: `/` says hello with the Host it got,
/// `/stream` sends one chunk, then the second only once the file `release` exists,
/// `/ws` is a WebSocket echo (text frames up to 125 bytes, enough here).
const SERVER: &str = r#"
import base64, hashlib, os, socket, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/ws":
            key = self.headers["Sec-WebSocket-Key"]
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            while True:
                head = self.rfile.read(2)
                if len(head) < 2: return
                n = head[1] & 0x7f
                mask = self.rfile.read(4)
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
                if head[0] & 0x0f == 8: return
                self.wfile.write(bytes([0x81, len(data)]) + data)
                self.wfile.flush()
        elif self.path == "/stream":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part, wait in ((b"first\n", False), (b"last\n", True)):
                while wait and not os.path.exists("release"):
                    time.sleep(0.01)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            body = ("hello from app via " + self.headers.get("Host", "") + " fwd " + self.headers.get("X-Forwarded-Host", "")).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// One HTTP/1.1 exchange on a fresh connection to the router: the head and the
/// reader positioned at the body.
fn request(port: u16, host: &str, path: &str, extra: &str) -> (String, BufReader<TcpStream>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the router");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("read the response head");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    (head, r)
}

fn body(head: &str, r: &mut BufReader<TcpStream>) -> String {
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a content-length");
    let mut b = vec![0; len];
    r.read_exact(&mut b).unwrap();
    String::from_utf8(b).unwrap()
}

#[test]
fn a_local_service_by_name_with_streaming_and_a_websocket_echo() {
    let env = TestEnv::new();
    let app_port = free_ports(1)[0];
    std::fs::write(env.project.join("server.py"), SERVER).unwrap();
    env.write_config(&format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\nspec:\n  services:\n    - name: app\n      command: [python3, server.py, \"{app_port}\"]\n      ports: [{app_port}]\n      readiness: {{ http: {{ path: /, port: {app_port} }} }}\n    - name: worker\n      command: sleep 300\n"
    ));
    env.devenv_ok(&["up"]);

    // The URL is in status: the router's port is the daemon's (any free one here).
    let status = env.status_json();
    let services = status["services"].as_array().unwrap();
    let app = services.iter().find(|s| s["name"] == "app").unwrap();
    let url = app["url"].as_str().expect("app has a url").to_owned();
    let worker = services.iter().find(|s| s["name"] == "worker").unwrap();
    assert!(
        worker["url"].is_null(),
        "a service without a port has no URL: {worker}"
    );
    let rest = url
        .strip_prefix("http://app.shop.localhost:")
        .unwrap_or_else(|| panic!("{url}"));
    let port: u16 = rest.trim_end_matches('/').parse().unwrap();
    let host = format!("app.shop.localhost:{port}");

    // By name, Host passed on as the browser sent it.
    let (head, mut r) = request(port, &host, "/", "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        body(&head, &mut r),
        format!("hello from app via {host} fwd {host}")
    );
    let (head, mut r) = request(port, &host.to_uppercase(), "/", "");
    assert!(head.starts_with("HTTP/1.1 200"), "case-insensitive: {head}");
    let _ = body(&head, &mut r);

    // Streaming: the first chunk arrives while the upstream still holds the last.
    let (head, mut r) = request(port, &host, "/stream", "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut size = String::new();
    r.read_line(&mut size).unwrap();
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert_eq!(
        first, "first\n",
        "the first chunk came before the upstream finished"
    );
    std::fs::write(env.project.join("release"), "").unwrap();
    let mut rest = String::new();
    r.read_to_string(&mut rest).ok();
    assert!(rest.contains("last\n"), "{rest:?}");

    // WebSocket: the upgrade and frames both ways.
    let (head, mut r) = request(
        port,
        &host,
        "/ws",
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the upstream's accept key came through: {head}"
    );
    for msg in ["hello", "through the router"] {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | msg.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(msg.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        r.get_mut().write_all(&frame).unwrap();
        let mut hdr = [0u8; 2];
        r.read_exact(&mut hdr).unwrap();
        assert_eq!(hdr[0], 0x81);
        let mut echoed = vec![0; usize::from(hdr[1])];
        r.read_exact(&mut echoed).unwrap();
        assert_eq!(String::from_utf8(echoed).unwrap(), msg);
    }

    // Unknown hosts: a page of the known addresses; strict parsing.
    for bad in [
        format!("nope.shop.localhost:{port}"),
        format!("localhost:{port}"),
        format!("x.app.shop.localhost:{port}"),
        format!("app.shop.localhost.evil.com:{port}"),
    ] {
        let (head, mut r) = request(port, &bad, "/", "");
        assert!(head.starts_with("HTTP/1.1 404"), "{bad}: {head}");
        let page = body(&head, &mut r);
        assert!(page.contains(&url), "{bad}: the page lists {url}: {page}");
        assert!(
            !page.contains("worker.shop"),
            "no URL for a portless service: {page}"
        );
    }

    // After down, the name answers 502 from the router (the service is gone), not a hang.
    env.devenv_ok(&["down"]);
    let (head, _) = request(port, &host, "/", "");
    assert!(
        head.starts_with("HTTP/1.1 502") || head.starts_with("HTTP/1.1 404"),
        "{head}"
    );
}

/// `up`'s progress events carry each service's URL, as `status` and `Watch` do.
#[test]
fn up_progress_events_carry_the_url() {
    let env = TestEnv::new();
    let app_port = free_ports(1)[0];
    std::fs::write(env.project.join("server.py"), SERVER).unwrap();
    env.write_config(&format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\nspec:\n  services:\n    - name: app\n      command: [python3, server.py, \"{app_port}\"]\n      ports: [{app_port}]\n      readiness: {{ http: {{ path: /, port: {app_port} }} }}\n    - name: worker\n      command: sleep 300\n"
    ));
    let out = env.devenv_ok(&["--json", "up"]);
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{out}")))
        .collect();
    let of = |name: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["event"] == "service" && e["name"] == name)
            .collect()
    };
    let app = of("app");
    let ready = app
        .iter()
        .find(|e| e["state"] == "ready")
        .unwrap_or_else(|| panic!("no ready event of app:\n{out}"));
    let status = env.status_json();
    let want = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "app")
        .unwrap()["url"]
        .clone();
    assert!(
        want.as_str()
            .is_some_and(|u| u.starts_with("http://app.shop.localhost:")),
        "{status}"
    );
    assert_eq!(ready["url"], want, "{out}");
    assert!(
        app.iter().all(|e| e["url"] == want),
        "every event of app has its URL:\n{out}"
    );
    let worker = of("worker");
    assert!(!worker.is_empty(), "{out}");
    assert!(
        worker.iter().all(|e| e["url"].is_null()),
        "a service without a port has no URL:\n{out}"
    );
    env.devenv_ok(&["down"]);
}
