//! Readiness probes, and the schedule that runs them: fast at first, so a service
//! is seen ready within tens of milliseconds, then backing off to `periodSeconds`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{Command, Probe};

/// What an exec probe runs with.
#[derive(Debug, Clone, Default)]
pub struct ExecContext {
    pub workdir: PathBuf,
    pub env: BTreeMap<String, String>,
}

/// Runs one probe attempt. `Err` carries a person-readable reason.
pub async fn check(probe: &Probe, ctx: &ExecContext, limit: Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, attempt(probe, ctx)).await {
        Ok(r) => r,
        Err(_) => Err(format!("probe timed out after {}ms", limit.as_millis())),
    }
}

async fn attempt(probe: &Probe, ctx: &ExecContext) -> Result<(), String> {
    match probe {
        Probe::Tcp { host, port } => TcpStream::connect((host.as_str(), *port))
            .await
            .map(drop)
            .map_err(|e| format!("tcp {host}:{port}: {e}")),
        Probe::Http { host, port, path } => http_get(host, *port, path).await,
        Probe::Exec { command } => exec(command, ctx).await,
        // Log probes are event driven: the supervisor watches the output instead.
        Probe::Log { pattern } => Err(format!("waiting for a line matching /{pattern}/")),
    }
}

/// A minimal HTTP/1.1 GET: the status line is all a probe needs, and it keeps the
/// daemon free of an HTTP client stack.
async fn http_get(host: &str, port: u16, path: &str) -> Result<(), String> {
    let url = format!("http://{host}:{port}{path}");
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: devenv-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("GET {url}: not an HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("GET {url}: status {code}"))
    }
}

async fn exec(command: &Command, ctx: &ExecContext) -> Result<(), String> {
    let mut cmd = build_command(command, ctx.env.get("PATH").map(String::as_str));
    cmd.current_dir(&ctx.workdir)
        .envs(&ctx.env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let status = cmd.status().await.map_err(|e| format!("exec probe: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("exec probe exited with {status}"))
    }
}

/// `sh -c` for a string, direct exec for a list; the program is resolved against
/// `path_var`, the PATH the child will have (see [`crate::process::resolve_program`]).
pub fn build_command(command: &Command, path_var: Option<&str>) -> tokio::process::Command {
    use crate::process::resolve_program;
    match command {
        Command::Shell(s) => {
            let mut c = tokio::process::Command::new(resolve_program("sh", path_var));
            c.arg("-c").arg(s);
            c
        }
        Command::Exec(argv) => {
            let mut c = tokio::process::Command::new(resolve_program(&argv[0], path_var));
            c.args(&argv[1..]);
            c
        }
    }
}

/// Delays between readiness attempts: 5 ms doubling to 50 ms for the first few
/// seconds (start-up is when speed matters), then growing to `period`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    elapsed: Duration,
    period: Duration,
}

impl Backoff {
    const FAST_PHASE: Duration = Duration::from_secs(3);
    const FAST_CAP: Duration = Duration::from_millis(50);

    pub fn new(period: Duration) -> Self {
        Self {
            next: Duration::from_millis(5).min(period),
            elapsed: Duration::ZERO,
            period,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.elapsed += d;
        let cap = if self.elapsed < Self::FAST_PHASE {
            Self::FAST_CAP.min(self.period)
        } else {
            self.period
        };
        self.next = (self.next * 2).min(cap).max(d.min(cap));
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_fast_then_reaches_period() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let first: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(first, [5, 10, 20, 40, 50]);
        let later: Vec<_> = (0..200).map(|_| b.next_delay()).collect();
        assert_eq!(*later.last().unwrap(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn tcp_and_http_probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let ctx = ExecContext::default();
        let http = Probe::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/".into(),
        };
        assert_eq!(check(&http, &ctx, Duration::from_secs(2)).await, Ok(()));
        let err = check(&http, &ctx, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(err.contains("status 503"), "{err}");
        server.await.unwrap();
        let tcp = Probe::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert!(
            check(&tcp, &ctx, Duration::from_secs(2)).await.is_err(),
            "listener is closed"
        );
    }

    #[tokio::test]
    async fn exec_probe_uses_exit_status() {
        let ctx = ExecContext {
            workdir: std::env::temp_dir(),
            ..Default::default()
        };
        let ok = Probe::Exec {
            command: Command::Shell("exit 0".into()),
        };
        let bad = Probe::Exec {
            command: Command::Exec(vec!["false".into()]),
        };
        assert_eq!(check(&ok, &ctx, Duration::from_secs(5)).await, Ok(()));
        assert!(check(&bad, &ctx, Duration::from_secs(5)).await.is_err());
    }
}
