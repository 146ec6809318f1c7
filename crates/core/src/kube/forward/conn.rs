//! One forward's connections: the warm spare port-forward kept open to the pod new
//! connections go to (`Warm`, `Spare`, `keep_spare`), and each accepted connection
//! (`Conn`), which picks its pod, opens or takes a port-forward and relays until either
//! side ends or its pod stops serving.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Portforwarder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{describe, summarize_pod_error, ActiveGuard, PodInfo, PodSet, Shared};

/// How long a connection waits for a ready pod before it is closed.
const WAIT_FOR_POD: Duration = Duration::from_secs(30);
/// How long the second attempt waits for another pod than the one that failed.
const RETRY_WAIT: Duration = Duration::from_secs(2);
/// Bound on opening one port-forward through the API server.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// After the local client half-closes, how long the pod may stay silent before the
/// connection is closed (the port-forward protocol cannot pass a half-close on).
const HALF_CLOSE_LINGER: Duration = Duration::from_secs(15);
/// Copy buffer per direction of a connection.
const COPY_BUFFER: usize = 16 * 1024;
/// A warm port-forward older than this is replaced (idle streams may be cut).
const SPARE_MAX_AGE: Duration = Duration::from_secs(300);
/// Pause after a failed attempt to open a warm port-forward.
const SPARE_RETRY: Duration = Duration::from_secs(1);

/// Aborts the port-forward's websocket task when the connection ends.
struct OpenForward(Portforwarder);

impl Drop for OpenForward {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One port-forward opened ahead of need to the pod new connections go to: opening
/// one costs a TLS connection and a websocket upgrade through the API server to the
/// kubelet (tens of ms), so a connection that finds one ready skips that wait. The next
/// one is opened as soon as it is taken.
pub(super) struct Warm {
    pod: PodInfo,
    forward: OpenForward,
    opened: Instant,
}

#[derive(Default)]
pub(super) struct Spare {
    pub(super) slot: Mutex<Option<Warm>>,
    taken: tokio::sync::Notify,
}

impl Spare {
    /// The warm port-forward, if its pod is still where new connections should go.
    fn take(&self, pods: &PodSet, prefer: Option<&str>) -> Option<(PodInfo, OpenForward)> {
        let warm = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.taken.notify_one();
        let warm = warm?;
        let target = pods.pick(prefer, None)?;
        (target.uid == warm.pod.uid
            && target.restarts == warm.pod.restarts
            && warm.opened.elapsed() < SPARE_MAX_AGE)
            .then_some((warm.pod, warm.forward))
    }
}

/// Keeps [`Spare`] filled with a port-forward to the pod new connections go to.
pub(super) async fn keep_spare(
    api: Api<Pod>,
    remote_port: u16,
    shared: Arc<Shared>,
    spare: Arc<Spare>,
    mut pods: watch::Receiver<PodSet>,
    cancel: CancellationToken,
) {
    loop {
        let prefer = shared.last_used();
        let target = tokio::select! {
            () = cancel.cancelled() => return,
            set = pods.wait_for(|s| s.pick(prefer.as_deref(), None).is_some()) => match set {
                Ok(set) => set.pick(prefer.as_deref(), None).cloned(),
                Err(_) => return,
            },
        };
        let Some(pod) = target else { continue };
        let ports = [remote_port];
        let opened = tokio::select! {
            () = cancel.cancelled() => return,
            r = tokio::time::timeout(OPEN_TIMEOUT, api.portforward(&pod.name, &ports)) => r,
        };
        match opened {
            Ok(Ok(forward)) => {
                *spare.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Warm {
                    pod: pod.clone(),
                    forward: OpenForward(forward),
                    opened: Instant::now(),
                });
            }
            _ => {
                // The connection path reports errors; here just don't spin.
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(SPARE_RETRY) => {}
                }
                continue;
            }
        }
        // Wait until it is taken, its pod stops being the target, or it gets old.
        tokio::select! {
            () = cancel.cancelled() => return,
            () = spare.taken.notified() => {}
            _ = pods.wait_for(|s| {
                s.pick(prefer.as_deref(), None)
                    .is_none_or(|p| p.uid != pod.uid || p.restarts != pod.restarts)
            }) => {
                spare.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
            () = tokio::time::sleep(SPARE_MAX_AGE) => {
                spare.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
        }
    }
}

/// One accepted local connection.
pub(super) struct Conn {
    pub(super) api: Api<Pod>,
    pub(super) spare: Arc<Spare>,
    pub(super) remote_port: u16,
    pub(super) service: String,
    pub(super) shared: Arc<Shared>,
    pub(super) pods: watch::Receiver<PodSet>,
}

impl Conn {
    pub(super) async fn serve(mut self, socket: TcpStream, cancel: CancellationToken) {
        let _active = ActiveGuard::new(self.shared.clone());
        let _ = socket.set_nodelay(true);
        tokio::select! {
            () = cancel.cancelled() => debug!("closed: the forward stops"),
            () = self.forward(socket) => {}
        }
    }

    async fn forward(&mut self, socket: TcpStream) {
        let waited_until = Instant::now() + WAIT_FOR_POD;
        let Some(first) = self.wait_for_pod(None, WAIT_FOR_POD).await else {
            self.shared.gave_up(format!(
                "no ready pod of {} within {}s; the connection was closed",
                self.service,
                WAIT_FOR_POD.as_secs()
            ));
            return;
        };
        let warm = self
            .spare
            .take(&self.pods.borrow(), self.shared.last_used().as_deref());
        let opened = match warm {
            Some((pod, forward)) => Ok((pod, forward)),
            None => self.open(&first).await.map(|f| (first.clone(), f)),
        };
        let (pod, mut forward) = match opened {
            Ok(pf) => pf,
            Err(e) => {
                self.shared.attempt_failed(e);
                let Some(second) = self.retry_target(&first, waited_until).await else {
                    return;
                };
                match self.open(&second).await {
                    Ok(f) => (second, f),
                    Err(e) => return self.shared.attempt_failed(e),
                }
            }
        };
        let (Some(stream), Some(port_error)) = (
            forward.0.take_stream(self.remote_port),
            forward.0.take_error(self.remote_port),
        ) else {
            return self
                .shared
                .attempt_failed(format!("pod {}: port-forward has no stream", pod.name));
        };
        self.shared.connected(&pod.name);
        debug!(conn.pod = %pod.name, "connected");
        let mut port_error = std::pin::pin!(port_error);
        let mut pods = self.pods.clone();
        tokio::select! {
            // The pod's error precedes the end of the stream it causes: report it first.
            biased;
            Some(message) = &mut port_error => return self.port_failed(&pod, &message),
            result = relay(socket, stream, &self.shared, HALF_CLOSE_LINGER) => {
                if let Err(e) = result {
                    debug!(error = %e, "connection ended");
                }
            }
            // The stream does not always end when the pod dies: the watch decides.
            _ = pods.wait_for(|set| !set.keeps(&pod.uid, pod.restarts)) => {
                debug!(conn.pod = %pod.name, "closed: the pod is gone");
            }
        }
        if let Some(Some(message)) = port_error.now_or_never() {
            self.port_failed(&pod, &message);
        }
    }

    fn port_failed(&self, pod: &PodInfo, message: &str) {
        self.shared.attempt_failed(format!(
            "pod {} port {}: {}",
            pod.name,
            self.remote_port,
            summarize_pod_error(message)
        ));
    }

    /// A ready pod other than `avoid` (preferring the one used last), waiting up to
    /// `limit` for the watch to report one.
    async fn wait_for_pod(&mut self, avoid: Option<&str>, limit: Duration) -> Option<PodInfo> {
        let prefer = self.shared.last_used();
        let found = tokio::time::timeout(
            limit,
            self.pods
                .wait_for(|set| set.pick(prefer.as_deref(), avoid).is_some()),
        )
        .await;
        match found {
            Ok(Ok(set)) => set.pick(prefer.as_deref(), avoid).cloned(),
            _ => None,
        }
    }

    /// Where the second attempt goes: another ready pod if one comes within RETRY_WAIT,
    /// else any ready pod (by then the watch has dropped the failed one if it is gone)
    /// until the connection's wait for a pod is over.
    async fn retry_target(&mut self, failed: &PodInfo, waited_until: Instant) -> Option<PodInfo> {
        if let Some(other) = self.wait_for_pod(Some(&failed.uid), RETRY_WAIT).await {
            return Some(other);
        }
        let rest = waited_until.saturating_duration_since(Instant::now());
        let found = self.wait_for_pod(None, rest.max(RETRY_WAIT)).await;
        if found.is_none() {
            self.shared.gave_up(format!(
                "no ready pod of {} to retry on; the connection was closed",
                self.service
            ));
        }
        found
    }

    async fn open(&self, pod: &PodInfo) -> Result<OpenForward, String> {
        match tokio::time::timeout(
            OPEN_TIMEOUT,
            self.api.portforward(&pod.name, &[self.remote_port]),
        )
        .await
        {
            Ok(Ok(forward)) => Ok(OpenForward(forward)),
            Ok(Err(e)) => Err(format!(
                "pod {}: cannot open a port-forward: {}",
                pod.name,
                describe(&e)
            )),
            Err(_) => Err(format!(
                "pod {}: opening a port-forward took over {}s",
                pod.name,
                OPEN_TIMEOUT.as_secs()
            )),
        }
    }
}

/// Copies between the local client and the pod until the pod's side ends, the client
/// goes away, or the client has half-closed and the pod stayed silent for `linger`.
///
/// The client's half-close is not passed on: kube's port-forward ends the whole stream
/// on a shutdown, which would lose the reply a half-closing client waits for.
async fn relay(
    client: impl AsyncRead + AsyncWrite,
    pod: impl AsyncRead + AsyncWrite,
    shared: &Shared,
    linger: Duration,
) -> io::Result<()> {
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut pod_rx, mut pod_tx) = tokio::io::split(pod);
    let received = AtomicU64::new(0);
    let up = async {
        pump(&mut client_rx, &mut pod_tx, &[&shared.bytes_out]).await?;
        loop {
            let before = received.load(Ordering::Relaxed);
            tokio::time::sleep(linger).await;
            if received.load(Ordering::Relaxed) == before {
                return io::Result::Ok(());
            }
        }
    };
    let down = async {
        pump(&mut pod_rx, &mut client_tx, &[&shared.bytes_in, &received]).await?;
        client_tx.shutdown().await
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

/// Copies `from` to `to` until end of stream, adding the bytes to `counters`.
async fn pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    counters: &[&AtomicU64],
) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        for c in counters {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::forward::ForwardSpec;

    /// A pod side that reads the request to its end marker, answers and closes.
    async fn echo_pod(mut side: tokio::io::DuplexStream, answer_after: Duration) {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.ends_with(b"\n\n") {
            let n = side.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "the client's half-close must not reach the pod");
            got.extend_from_slice(&buf[..n]);
        }
        tokio::time::sleep(answer_after).await;
        side.write_all(b"answer").await.unwrap();
    }

    async fn relayed(answer_after: Duration, linger: Duration) -> Vec<u8> {
        let spec = ForwardSpec {
            service: "web".into(),
            local_port: 0,
            remote_port: 80,
            namespace: "ns".into(),
            selector: "".into(),
        };
        let shared = Shared::new(&spec, 0);
        let (mut local, ours_local) = tokio::io::duplex(1024);
        let client = async {
            local.write_all(b"request\n\n").await.unwrap();
            local.shutdown().await.unwrap();
            let mut answer = Vec::new();
            local.read_to_end(&mut answer).await.unwrap();
            answer
        };
        let server = async {
            let (ours, theirs) = tokio::io::duplex(1024);
            let pod = tokio::spawn(echo_pod(theirs, answer_after));
            relay(ours_local, ours, &shared, linger).await.unwrap();
            pod.abort();
        };
        let (answer, ()) = tokio::join!(client, server);
        assert_eq!(shared.bytes_out.load(Ordering::Relaxed), 9);
        answer
    }

    #[tokio::test]
    async fn a_half_closing_client_still_gets_its_answer() {
        let answer = relayed(Duration::from_millis(300), Duration::from_secs(30)).await;
        assert_eq!(answer, b"answer");
    }

    #[tokio::test]
    async fn a_silent_pod_after_a_half_close_is_let_go() {
        let started = std::time::Instant::now();
        let answer = relayed(Duration::from_secs(60), Duration::from_millis(200)).await;
        assert_eq!(answer, b"");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
