//! Port forwards against the real test cluster: they follow the workload's pods across
//! deletions and scale-to-zero, on the same local port.
//!
//! Needs the cluster of `tests/cluster/up.sh` (or any cluster) in `KUBECONFIG` and the
//! image `devenv.test/busybox:1.35.0` (`DEVENV_TEST_BUSYBOX_IMAGE` overrides it). Run:
//! `KUBECONFIG=... cargo test -p devenv-core --test kube_forward -- --ignored --nocapture`

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use devenv_core::kube::forward::{ForwardSpec, ForwardState, Forwarder};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const HTTP_PORT: u16 = 8080;
const ENV: &str = "fwdtest";

fn busybox_image() -> String {
    std::env::var("DEVENV_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "devenv.test/busybox:1.35.0".to_owned())
}

async fn client() -> Result<Client> {
    match std::env::var("KUBECONFIG") {
        Ok(path) if !path.is_empty() => {}
        _ => panic!(
            "KUBECONFIG is not set: these tests need a cluster. Start the project's test \
             cluster with `eval \"$(tests/cluster/up.sh)\"` (or point KUBECONFIG at one)"
        ),
    }
    let config = kube::Config::infer().await.context("reading KUBECONFIG")?;
    devenv_core::kube::client_for(config).context("building a client from KUBECONFIG")
}

/// Runs `body` in a fresh namespace, deleted afterwards whether it passed, failed or
/// panicked.
async fn in_namespace<F, Fut>(prefix: &str, body: F) -> Result<()>
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let client = client().await?;
    let name = format!(
        "{prefix}-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_micros()
            & 0xff_ffff
    );
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces.create(&PostParams::default(), &ns).await?;
    let result = AssertUnwindSafe(async {
        // Pods can be created once the namespace's default service account exists.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let accounts = &accounts;
        poll(
            "the default service account",
            Duration::from_secs(30),
            || async move { Ok(accounts.get_opt("default").await?.is_some()) },
        )
        .await?;
        body(client.clone(), name.clone()).await
    })
    .catch_unwind()
    .await;
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        namespaces.delete(&name, &DeleteParams::background()),
    )
    .await;
    match result {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Polls `check` until it returns true, failing after `limit`.
async fn poll<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + limit;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            match last_error {
                Some(e) => bail!("no {what} within {limit:?} (last error: {e:#})"),
                None => bail!("no {what} within {limit:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn selector(service: &str) -> String {
    format!("devenv.dev/environment={ENV},devenv.dev/service={service}")
}

/// A Deployment of busybox httpd serving its pod's host name (= the pod name) on
/// HTTP_PORT.
async fn create_web(client: &Client, ns: &str, name: &str, replicas: i32) -> Result<()> {
    let labels = json!({ "devenv.dev/environment": ENV, "devenv.dev/service": name });
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    // httpd as PID 1 ignores SIGTERM: a short grace keeps deletions quick.
                    "terminationGracePeriodSeconds": 3,
                    "containers": [{
                        "name": "web",
                        "image": busybox_image(),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", format!(
                            "mkdir -p /www && hostname > /www/index.html && \
                             exec httpd -f -p {HTTP_PORT} -h /www"
                        )],
                        "ports": [{ "containerPort": HTTP_PORT }],
                        "readinessProbe": {
                            "tcpSocket": { "port": HTTP_PORT },
                            "periodSeconds": 1
                        }
                    }]
                }
            }
        }
    }))?;
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await?;
    Ok(())
}

/// The names of the workload's Running, Ready pods without a deletion timestamp.
async fn ready_pods(client: &Client, ns: &str, service: &str) -> Result<Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&selector(service)))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.metadata.name)
        .collect())
}

async fn one_ready_pod(client: &Client, ns: &str, service: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pods = ready_pods(client, ns, service).await?;
        if let [pod] = pods.as_slice() {
            return Ok(pod.clone());
        }
        ensure!(
            Instant::now() < deadline,
            "{service}: not exactly one ready pod within 120s: {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/1.0 GET; returns the body once it is complete per Content-Length (a
/// port-forward signals the pod's close about a second late, so EOF is not awaited).
async fn http_get(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> Result<String> {
    stream
        .write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!(
                "connection closed after {} bytes: {:?}",
                response.len(),
                String::from_utf8_lossy(&response)
            );
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        ensure!(
            text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
            "not a 200 response: {text:?}"
        );
        let length = text[..end]
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .and_then(|v| v.parse::<usize>().ok())
            .context("no content-length")?;
        if response.len() >= end + 4 + length {
            return Ok(text[end + 4..end + 4 + length].trim().to_owned());
        }
    }
}

/// GET through the local port, bounded.
async fn get_via(port: u16, limit: Duration) -> Result<String> {
    tokio::time::timeout(limit, async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        http_get(&mut stream).await
    })
    .await
    .with_context(|| format!("GET via localhost:{port}: no answer within {limit:?}"))?
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test cluster (tests/cluster/up.sh) and KUBECONFIG"]
async fn k8s_forward_follows_the_pod_across_a_deletion() -> Result<()> {
    in_namespace("fwd-restart", |client, ns| async move {
        create_web(&client, &ns, "web", 1).await?;
        let first = one_ready_pod(&client, &ns, "web").await?;
        let forwarder = Forwarder::start(
            client.clone(),
            ForwardSpec {
                service: "web".into(),
                local_port: 0,
                remote_port: HTTP_PORT,
                namespace: ns.clone(),
                selector: selector("web"),
            },
        )
        .await?;
        let port = forwarder.status().local_port;

        assert_eq!(get_via(port, Duration::from_secs(30)).await?, first);

        // Latency of a whole request (a new port-forward per connection), and the
        // same over kube's port-forward alone, for comparison.
        let mut through = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            assert_eq!(get_via(port, Duration::from_secs(10)).await?, first);
            through.push(started.elapsed());
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut direct = Vec::new();
        let mut opening = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            let mut pf = pods.portforward(&first, &[HTTP_PORT]).await?;
            opening.push(started.elapsed());
            let mut stream = pf.take_stream(HTTP_PORT).context("no stream")?;
            assert_eq!(http_get(&mut stream).await?, first);
            direct.push(started.elapsed());
            pf.abort();
        }
        println!(
            "request latency, median of 50: through the forward {:?}; \
             kube port-forward alone {:?}, of which opening it {:?}",
            median(through),
            median(direct),
            median(opening)
        );

        // A connection left open on the pod (an unfinished request keeps httpd waiting).
        let mut held = TcpStream::connect(("127.0.0.1", port)).await?;
        held.write_all(b"GET /index.html HTTP/1.0\r\n").await?;
        let fwd = &forwarder;
        poll(
            "connection on the pod",
            Duration::from_secs(10),
            || async move { Ok(fwd.status().active_connections == 1) },
        )
        .await?;

        let deleted_at = Instant::now();
        pods.delete(&first, &DeleteParams::default()).await?;
        let held_closed = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            loop {
                match held.read(&mut buf).await {
                    Ok(0) | Err(_) => return deleted_at.elapsed(),
                    Ok(_) => {}
                }
            }
        });

        // Same local port, new pod: each GET waits in the forward until a pod is ready.
        let deadline = Instant::now() + Duration::from_secs(120);
        let second = loop {
            match get_via(port, Duration::from_secs(40)).await {
                Ok(body) if body != first => break body,
                Ok(_) => {}
                Err(e) => println!("while the pod is replaced: {e:#}"),
            }
            ensure!(
                Instant::now() < deadline,
                "no answer from a replacement pod within 120s: {:?}",
                forwarder.status()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let recovered = deleted_at.elapsed();
        println!("pod deleted -> first request answered by {second}: {recovered:?}");

        let held_for = tokio::time::timeout(Duration::from_secs(60), held_closed)
            .await
            .context("the connection to the deleted pod stayed open")??;
        println!("pod deleted -> its open connection closed: {held_for:?}");

        let status = forwarder.status();
        println!("{status:?}");
        assert!(status.reconnects >= 1, "{status:?}");
        assert_eq!(status.state, ForwardState::Active, "{status:?}");
        assert_eq!(status.pod.as_deref(), Some(second.as_str()), "{status:?}");
        assert!(status.connections >= 53, "{status:?}");
        assert!(status.bytes_in > 0 && status.bytes_out > 0, "{status:?}");

        forwarder.stop().await;
        std::net::TcpListener::bind(("127.0.0.1", port))
            .context("the local port is still taken after stop()")?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test cluster (tests/cluster/up.sh) and KUBECONFIG"]
async fn k8s_forward_connection_waits_for_a_ready_pod() -> Result<()> {
    in_namespace("fwd-wait", |client, ns| async move {
        create_web(&client, &ns, "web", 0).await?;
        let forwarder = Forwarder::start(
            client.clone(),
            ForwardSpec {
                service: "web".into(),
                local_port: 0,
                remote_port: HTTP_PORT,
                namespace: ns.clone(),
                selector: selector("web"),
            },
        )
        .await?;
        let port = forwarder.status().local_port;

        let pending = tokio::spawn(get_via(port, Duration::from_secs(60)));
        let fwd = &forwarder;
        poll(
            "connection waiting for a pod",
            Duration::from_secs(10),
            || async move {
                let s = fwd.status();
                Ok(s.active_connections == 1 && s.state == ForwardState::Waiting)
            },
        )
        .await?;

        let scaled_at = Instant::now();
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
            )
            .await?;
        let body = pending.await??;
        println!(
            "scaled 0 -> 1 -> the waiting request answered: {:?}",
            scaled_at.elapsed()
        );
        let pod = one_ready_pod(&client, &ns, "web").await?;
        assert_eq!(body, pod);
        let status = forwarder.status();
        assert_eq!(status.state, ForwardState::Active, "{status:?}");
        assert_eq!(status.pod.as_deref(), Some(pod.as_str()), "{status:?}");
        assert_eq!(status.reconnects, 0, "{status:?}");
        forwarder.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test cluster (tests/cluster/up.sh) and KUBECONFIG"]
async fn k8s_forward_reports_a_port_nobody_listens_on() -> Result<()> {
    in_namespace("fwd-refused", |client, ns| async move {
        create_web(&client, &ns, "web", 1).await?;
        let pod = one_ready_pod(&client, &ns, "web").await?;
        let forwarder = Forwarder::start(
            client.clone(),
            ForwardSpec {
                service: "web".into(),
                local_port: 0,
                remote_port: 9999,
                namespace: ns.clone(),
                selector: selector("web"),
            },
        )
        .await?;
        let port = forwarder.status().local_port;
        let err = get_via(port, Duration::from_secs(30))
            .await
            .expect_err("nothing listens on 9999 in the pod");
        assert!(err.to_string().contains("connection closed"), "{err:#}");
        // The kubelet's error frame can trail the end of the data stream the client saw
        // close: the status reflects it shortly after, not necessarily before.
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            let status = forwarder.status();
            if status.state == ForwardState::Error || Instant::now() >= deadline {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status.state, ForwardState::Error, "{status:?}");
        assert_eq!(
            status.last_error.as_deref(),
            Some(format!("pod {pod} port 9999: connection refused").as_str()),
            "{status:?}"
        );
        forwarder.stop().await;
        Ok(())
    })
    .await
}
