//! Observing the world from outside: processes in /proc, TCP ports, HTTP, tools.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Polls `cond` with backoff (5 ms doubling to 200 ms) until it holds or `timeout`
/// passes. Returns whether it held. The one way tests wait for something.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// `n` distinct ports that were free a moment ago (all bound at once, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// A minimal `GET` to 127.0.0.1:`port``path`; `None` when nothing answers properly.
pub fn http_get(port: u16, path: &str) -> Option<HttpResponse> {
    http_request(port, "GET", path, "")
}

/// A minimal `POST` of `body` (text/plain) to 127.0.0.1:`port``path`.
pub fn http_post(port: u16, path: &str, body: &str) -> Option<HttpResponse> {
    http_request(port, "POST", path, body)
}

fn http_request(port: u16, method: &str, path: &str, body: &str) -> Option<HttpResponse> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        conn,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(HttpResponse {
        status,
        body: body.to_string(),
    })
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => proc_state(&stat).is_some_and(|s| s != 'Z' && s != 'X'),
        Err(_) => false,
    }
}

fn proc_state(stat: &str) -> Option<char> {
    // "pid (comm) S ...": comm may hold spaces and parens, so cut at the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Live processes whose environment has `DEVENV_E2E_ID=<id>` and, when given, also
/// defines `also_var`. Never includes this process.
pub fn env_pids(id: &str, also_var: Option<&str>) -> Vec<u32> {
    let needle = format!("{}={id}", crate::ID_VAR);
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && alive(pid))
        .filter(|&pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/environ")) else {
                return false;
            };
            let vars: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            let has_id = vars.contains(&needle.as_bytes());
            let has_also = also_var.is_none_or(|name| {
                let prefix = format!("{name}=");
                vars.iter().any(|v| v.starts_with(prefix.as_bytes()))
            });
            has_id && has_also
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Resident set size in KiB (`VmRSS` of /proc/PID/status).
pub fn read_rss_kib(pid: u32) -> Option<u64> {
    read_status_kib(pid, "VmRSS")
}

/// Peak resident set size in KiB (`VmHWM` of /proc/PID/status).
pub fn read_hwm_kib(pid: u32) -> Option<u64> {
    read_status_kib(pid, "VmHWM")
}

fn read_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of /proc/PID/stat, in clock ticks.
pub fn read_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    // After "(comm)": state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// grpcurl: `$GRPCURL`, else `~/.cache/devenv-tools/bin/grpcurl` (where
/// scripts/install-test-tools.sh puts it), else on `PATH`. The error says how to get it.
pub fn find_grpcurl() -> Result<PathBuf, String> {
    find_tool("grpcurl", "GRPCURL")
}

/// helm, looked up like [`find_grpcurl`] (`$HELM` first).
pub fn find_helm() -> Result<PathBuf, String> {
    find_tool("helm", "HELM")
}

/// A test tool: `$VAR`, else `~/.cache/devenv-tools/bin/NAME`, else on `PATH`.
fn find_tool(name: &str, var: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{var}={} does not exist", p.display()))
        };
    }
    let cached = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/devenv-tools/bin").join(name))
        .filter(|p| p.is_file());
    if let Some(p) = cached {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            format!(
                "{name} not found (${var}, ~/.cache/devenv-tools/bin, PATH); \
                 install it with scripts/install-test-tools.sh"
            )
        })
}
