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

/// Why one probe attempt did not pass. Its text is the reason `status` shows
/// ("readiness probe did not pass within 30s: GET http://127.0.0.1:8080/health: status 503").
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe timed out after {}ms", .0.as_millis())]
    TimedOut(Duration),
    /// Connecting to or talking with the probed address failed.
    #[error("{at}: {source}")]
    Io {
        /// What was probed: `tcp HOST:PORT`, `GET URL`, `postgres HOST:PORT`, ...
        at: String,
        #[source]
        source: std::io::Error,
    },
    /// The server answered, and its answer means it is not ready (or is not what
    /// the probe expects).
    #[error("{at}: {answer}")]
    Answered { at: String, answer: String },
    /// Log probes pass on an output line, which the supervisor watches for.
    #[error("waiting for a line matching /{0}/")]
    WaitingForLine(String),
    #[error("exec probe: {0}")]
    ExecSpawn(#[source] std::io::Error),
    #[error("exec probe exited with {0}")]
    ExecFailed(std::process::ExitStatus),
}

impl ProbeError {
    fn io(at: &str) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            at: at.to_owned(),
            source,
        }
    }

    fn answered(at: &str, answer: impl Into<String>) -> Self {
        Self::Answered {
            at: at.to_owned(),
            answer: answer.into(),
        }
    }
}

/// Runs one probe attempt.
pub async fn check(probe: &Probe, ctx: &ExecContext, limit: Duration) -> Result<(), ProbeError> {
    match tokio::time::timeout(limit, attempt(probe, ctx)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::TimedOut(limit)),
    }
}

async fn attempt(probe: &Probe, ctx: &ExecContext) -> Result<(), ProbeError> {
    match probe {
        Probe::Tcp { host, port } => TcpStream::connect((host.as_str(), *port))
            .await
            .map(drop)
            .map_err(ProbeError::io(&format!("tcp {host}:{port}"))),
        Probe::Http { host, port, path } => http_get(host, *port, path).await,
        Probe::Exec { command } => exec(command, ctx).await,
        // Log probes are event driven: the supervisor watches the output instead.
        Probe::Log { pattern } => Err(ProbeError::WaitingForLine(pattern.to_string())),
        Probe::Postgres {
            host,
            port,
            user,
            database,
        } => postgres(host, *port, user, database).await,
        Probe::Redis {
            host,
            port,
            password,
        } => redis(host, *port, password.as_deref()).await,
    }
}

/// SQLSTATE 57P03 `cannot_connect_now`: starting up, in recovery, shutting down.
const PG_CANNOT_CONNECT_NOW: &str = "57P03";
/// Longest server message a probe reads; real ones are a few hundred bytes.
const REPLY_LIMIT: usize = 8 * 1024;

/// pg_isready without libpq: send a protocol 3.0 StartupMessage and read the first
/// reply. An authentication request means the server accepts connections (the probe
/// then hangs up, which the server does not log); so does any error but 57P03, as
/// pg_isready has it (a refused user or database is the client's problem, not a server
/// that isn't up). A TCP connect alone passes while postgres still replays its WAL.
async fn postgres(host: &str, port: u16, user: &str, database: &str) -> Result<(), ProbeError> {
    let at = format!("postgres {host}:{port}");
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(ProbeError::io(&at))?;
    let mut body = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
    for (k, v) in [
        ("user", user),
        ("database", database),
        ("application_name", "devenv-probe"),
    ] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = u32::try_from(body.len() + 4)
        .map_err(|_| ProbeError::answered(&at, "startup message too long"))?
        .to_be_bytes()
        .to_vec();
    msg.extend_from_slice(&body);
    stream.write_all(&msg).await.map_err(ProbeError::io(&at))?;
    let mut head = [0u8; 5];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| ProbeError::answered(&at, format!("no reply to the startup message ({e})")))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    match head[0] {
        b'R' => {
            // Read the whole request before hanging up: a socket closed with unread
            // data sends a reset, which the server logs ("could not receive data from
            // client") on every probe; a clean end during authentication it does not.
            let mut rest = vec![0u8; len.saturating_sub(4).min(REPLY_LIMIT)];
            let _ = stream.read_exact(&mut rest).await;
            let _ = stream.shutdown().await;
            Ok(())
        }
        b'E' => {
            let mut fields = vec![0u8; len.saturating_sub(4).min(REPLY_LIMIT)];
            stream
                .read_exact(&mut fields)
                .await
                .map_err(|e| ProbeError::answered(&at, format!("truncated error reply ({e})")))?;
            let (code, message) = pg_error_fields(&fields);
            if code == PG_CANNOT_CONNECT_NOW {
                Err(ProbeError::answered(&at, message))
            } else {
                Ok(())
            }
        }
        other => Err(ProbeError::answered(
            &at,
            format!("not a PostgreSQL server (its reply starts with byte 0x{other:02x})"),
        )),
    }
}

/// The SQLSTATE (`C`) and message (`M`) fields of an ErrorResponse body.
fn pg_error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut message) = (String::new(), String::new());
    for field in body.split(|&b| b == 0) {
        match field.split_first() {
            Some((b'C', v)) => code = String::from_utf8_lossy(v).into_owned(),
            Some((b'M', v)) => message = String::from_utf8_lossy(v).into_owned(),
            _ => {}
        }
    }
    (code, message)
}

/// `PING` -> `+PONG`, after `AUTH` when the service has a password. A server still
/// loading its dataset answers `-LOADING`, which is not ready.
async fn redis(host: &str, port: u16, password: Option<&str>) -> Result<(), ProbeError> {
    let at = format!("redis {host}:{port}");
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(ProbeError::io(&at))?;
    let mut stream = tokio::io::BufReader::new(stream);
    if let Some(pw) = password {
        let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{pw}\r\n", pw.len());
        let reply = redis_call(&mut stream, auth.as_bytes(), &at).await?;
        if reply != "+OK" {
            // The reply names the problem (WRONGPASS ...), never the password.
            return Err(ProbeError::answered(&at, format!("AUTH refused: {reply}")));
        }
    }
    let reply = redis_call(&mut stream, b"*1\r\n$4\r\nPING\r\n", &at).await?;
    if reply == "+PONG" {
        Ok(())
    } else {
        Err(ProbeError::answered(&at, format!("PING answered {reply}")))
    }
}

async fn redis_call(
    stream: &mut tokio::io::BufReader<TcpStream>,
    request: &[u8],
    at: &str,
) -> Result<String, ProbeError> {
    use tokio::io::AsyncBufReadExt;
    stream
        .get_mut()
        .write_all(request)
        .await
        .map_err(ProbeError::io(at))?;
    let mut line = Vec::new();
    let n = (&mut *stream)
        .take(REPLY_LIMIT as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(ProbeError::io(at))?;
    if n == 0 {
        return Err(ProbeError::answered(at, "the server closed the connection"));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}

/// A minimal HTTP/1.1 GET: the status line is all a probe needs, and it keeps the
/// daemon free of an HTTP client stack.
async fn http_get(host: &str, port: u16, path: &str) -> Result<(), ProbeError> {
    let at = format!("GET http://{host}:{port}{path}");
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(ProbeError::io(&at))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: devenv-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(ProbeError::io(&at))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        let n = stream.read(&mut chunk).await.map_err(ProbeError::io(&at))?;
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
        .ok_or_else(|| ProbeError::answered(&at, "not an HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(ProbeError::answered(&at, format!("status {code}")))
    }
}

async fn exec(command: &Command, ctx: &ExecContext) -> Result<(), ProbeError> {
    let mut cmd = build_command(command, ctx.env.get("PATH").map(String::as_str));
    cmd.current_dir(&ctx.workdir)
        .envs(&ctx.env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let status = cmd.status().await.map_err(ProbeError::ExecSpawn)?;
    if status.success() {
        Ok(())
    } else {
        Err(ProbeError::ExecFailed(status))
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
        let r = check(&http, &ctx, Duration::from_secs(2)).await;
        assert!(r.is_ok(), "{r:?}");
        let err = check(&http, &ctx, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Answered { .. }), "{err:?}");
        assert!(err.to_string().contains("status 503"), "{err}");
        server.await.unwrap();
        // A port held by a bound socket that does not listen: refused, and no other
        // test can take it meanwhile (a closed listener's port could be handed out again).
        let held = tokio::net::TcpSocket::new_v4().unwrap();
        held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let tcp = Probe::Tcp {
            host: "127.0.0.1".into(),
            port: held.local_addr().unwrap().port(),
        };
        assert!(
            matches!(
                check(&tcp, &ctx, Duration::from_secs(2)).await,
                Err(ProbeError::Io { .. })
            ),
            "nothing listens on the port"
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
        let r = check(&ok, &ctx, Duration::from_secs(5)).await;
        assert!(r.is_ok(), "{r:?}");
        assert!(matches!(
            check(&bad, &ctx, Duration::from_secs(5)).await,
            Err(ProbeError::ExecFailed(_))
        ));
    }
}

#[cfg(test)]
mod protocol_tests {
    //! The protocol probes against canned server replies: the states a real server is
    //! in only for moments (starting up, loading) are hard to catch on demand. The
    //! presets' e2e tests run them against real postgres and redis.
    use super::*;

    /// A one-connection server that reads what the client sends and answers `reply`.
    async fn server(replies: Vec<Vec<u8>>) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for reply in replies {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                s.write_all(&reply).await.unwrap();
            }
            seen
        });
        (port, task)
    }

    fn pg_error(code: &str, message: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in [(b'S', "FATAL"), (b'C', code), (b'M', message)] {
            body.push(k);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = vec![b'E'];
        msg.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        msg.extend_from_slice(&body);
        msg
    }

    fn pg(port: u16) -> Probe {
        Probe::Postgres {
            host: "127.0.0.1".into(),
            port,
            user: "app".into(),
            database: "shop".into(),
        }
    }

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn postgres_starting_up_is_not_ready_an_auth_request_is() {
        let ctx = ExecContext::default();
        let (port, task) = server(vec![pg_error(
            "57P03",
            "the database system is starting up",
        )])
        .await;
        let err = check(&pg(port), &ctx, LIMIT).await.unwrap_err();
        assert!(matches!(err, ProbeError::Answered { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("the database system is starting up"),
            "{err}"
        );
        let sent = task.await.unwrap();
        assert_eq!(&sent[4..8], &196_608u32.to_be_bytes(), "protocol 3.0");
        assert!(sent.windows(9).any(|w| w == b"user\0app\0"), "{sent:?}");

        // AuthenticationSASL: the server is up and asks for a password.
        let (port, _) = server(vec![b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0".to_vec()]).await;
        let r = check(&pg(port), &ctx, LIMIT).await;
        assert!(r.is_ok(), "{r:?}");
        // Refusing this user is still a server accepting connections (pg_isready).
        let (port, _) = server(vec![pg_error("28000", "no pg_hba.conf entry")]).await;
        let r = check(&pg(port), &ctx, LIMIT).await;
        assert!(r.is_ok(), "{r:?}");
        let (port, _) = server(vec![b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()]).await;
        let err = check(&pg(port), &ctx, LIMIT).await.unwrap_err();
        assert!(err.to_string().contains("not a PostgreSQL server"), "{err}");
    }

    #[tokio::test]
    async fn redis_needs_pong_after_auth() {
        let ctx = ExecContext::default();
        let probe = |port, password: Option<&str>| Probe::Redis {
            host: "127.0.0.1".into(),
            port,
            password: password.map(str::to_owned),
        };
        let (port, task) = server(vec![b"+OK\r\n".to_vec(), b"+PONG\r\n".to_vec()]).await;
        let r = check(&probe(port, Some("s3cret")), &ctx, LIMIT).await;
        assert!(r.is_ok(), "{r:?}");
        let sent = String::from_utf8(task.await.unwrap()).unwrap();
        assert_eq!(
            sent,
            "*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n*1\r\n$4\r\nPING\r\n"
        );

        let (port, _) = server(vec![
            b"-LOADING Redis is loading the dataset in memory\r\n".to_vec()
        ])
        .await;
        let err = check(&probe(port, None), &ctx, LIMIT).await.unwrap_err();
        assert!(matches!(err, ProbeError::Answered { .. }), "{err:?}");
        assert!(err.to_string().contains("-LOADING"), "{err}");
        let (port, _) = server(vec![
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n".to_vec(),
        ])
        .await;
        let err = check(&probe(port, Some("s3cret")), &ctx, LIMIT)
            .await
            .unwrap_err();
        let err = err.to_string();
        assert!(err.contains("AUTH refused: -WRONGPASS"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
