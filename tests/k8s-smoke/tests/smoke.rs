//! Smoke test of a Kubernetes cluster for devenv's tests: the one that
//! `tests/cluster/up.sh` builds and starts, or any cluster given with
//! `DEVENV_TEST_KUBECONFIG`.
//!
//! It proves the protocol paths devenv relies on, through kube-rs against a
//! real apiserver, kubelet, containerd and runc:
//! - the node is Ready;
//! - a Deployment of the busybox image becomes available;
//! - pod logs stream (follow);
//! - exec with stdin round-trips a tar archive;
//! - port-forward reaches busybox httpd;
//! - a Service is reachable by its DNS name from another pod.
//!
//! Configuration (environment):
//! - `DEVENV_TEST_KUBECONFIG`, else `KUBECONFIG`: the cluster. Neither set is
//!   a failure, never a silent skip.
//! - `DEVENV_TEST_BUSYBOX_IMAGE`: the busybox image (default
//!   `devenv.test/busybox:1.35.0`, which up.sh imports; on another cluster use
//!   e.g. `busybox:1.36`). Pulled only if not present.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use std::panic::AssertUnwindSafe;

use futures::{AsyncBufReadExt, FutureExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service, ServiceAccount};
use kube::api::{Api, AttachParams, DeleteParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEFAULT_BUSYBOX_IMAGE: &str = "devenv.test/busybox:1.35.0";
const HTTP_PORT: u16 = 8080;
const INDEX_BODY: &str = "hello from devenv smoke";

fn busybox_image() -> String {
    std::env::var("DEVENV_TEST_BUSYBOX_IMAGE").unwrap_or_else(|_| DEFAULT_BUSYBOX_IMAGE.to_string())
}

async fn client() -> Result<Client> {
    let (var, path) = match (
        std::env::var("DEVENV_TEST_KUBECONFIG"),
        std::env::var("KUBECONFIG"),
    ) {
        (Ok(p), _) if !p.is_empty() => ("DEVENV_TEST_KUBECONFIG", p),
        (_, Ok(p)) if !p.is_empty() => ("KUBECONFIG", p),
        _ => panic!(
            "no cluster: set DEVENV_TEST_KUBECONFIG (or KUBECONFIG) to a kubeconfig. \
             Start the project's test cluster with `eval \"$(tests/cluster/up.sh)\"`, \
             or run tests/cluster/test.sh which starts and stops it."
        ),
    };
    let kubeconfig =
        Kubeconfig::read_from(&path).with_context(|| format!("reading {var}={path}"))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {var}={path}"))?;
    Ok(Client::try_from(config)?)
}

/// Runs `body` in a fresh namespace, which is deleted afterwards whether the
/// body returned, failed or panicked.
async fn in_namespace<F, Fut>(prefix: &str, body: F) -> Result<()>
where
    F: FnOnce(Client, String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let client = client().await?;
    let name = format!(
        "smoke-{prefix}-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_micros()
            & 0xffffff
    );
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"devenv.test/smoke": "true"}}
    }))?;
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces.create(&PostParams::default(), &ns).await?;
    let result = AssertUnwindSafe(async {
        // Pods can be created only once the namespace's default service account exists.
        let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let sa = &sa;
        poll(
            "the namespace's default service account",
            Duration::from_secs(30),
            || async move { Ok(sa.get_opt("default").await?.is_some()) },
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

/// Awaits `fut` for at most `limit`; a timeout is an error naming `what`.
async fn within<T>(
    what: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no result within {limit:?}"))
}

/// Polls `check` until it returns true or `timeout` passes.
async fn poll<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            match last_err {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what} (last error: {e:#})")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A Deployment of busybox running httpd on HTTP_PORT and printing a counter
/// to stdout every 200ms; waits until it is available and returns its pod.
async fn busybox_deployment(client: &Client, ns: &str, name: &str) -> Result<Pod> {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main",
                        "image": busybox_image(),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", format!(
                            "mkdir -p /srv && echo '{INDEX_BODY}' > /srv/index.html && \
                             httpd -f -p {HTTP_PORT} -h /srv & \
                             i=0; while true; do echo \"tick $i\"; i=$((i+1)); sleep 0.2; done"
                        )],
                        "ports": [{"containerPort": HTTP_PORT, "name": "http"}],
                        "readinessProbe": {
                            "tcpSocket": {"port": HTTP_PORT},
                            "periodSeconds": 1
                        }
                    }]
                }
            }
        }
    }))?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let deployments = &deployments;
    poll(
        &format!("deployment {ns}/{name} to become available"),
        Duration::from_secs(120),
        || async move {
            let d = deployments.get(name).await?;
            let available = d
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            let condition = d
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                })
                .unwrap_or(false);
            Ok(available == 1 && condition)
        },
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&kube::api::ListParams::default().labels(&format!("app={name}")))
        .await?;
    let pod = list
        .items
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .context("no running pod of the deployment")?;
    Ok(pod)
}

#[tokio::test]
async fn node_is_ready() -> Result<()> {
    let client = client().await?;
    let nodes = Api::<Node>::all(client).list(&Default::default()).await?;
    assert!(!nodes.items.is_empty(), "the cluster has no nodes");
    for node in &nodes.items {
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        assert_eq!(
            ready.as_deref(),
            Some("True"),
            "node {:?} is not Ready",
            node.metadata.name
        );
    }
    Ok(())
}

#[tokio::test]
async fn deployment_becomes_available_and_logs_stream() -> Result<()> {
    in_namespace("logs", |client, ns| async move {
        let pod = busybox_deployment(&client, &ns, "ticker").await?;
        let pod_name = pod.metadata.name.unwrap();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

        // Follow the log from its last line on: new lines must keep arriving on
        // the open stream.
        let params = LogParams {
            follow: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        let stream = within(
            "opening the log stream",
            Duration::from_secs(30),
            pods.log_stream(&pod_name, &params),
        )
        .await??;
        let mut lines = stream.lines();
        let started = Instant::now();
        let mut ticks = Vec::new();
        while ticks.len() < 11 {
            let line = within(
                "the next line of a followed log",
                Duration::from_secs(10),
                lines.try_next(),
            )
            .await??
            .context("log stream ended while following")?;
            if let Some(n) = line.strip_prefix("tick ") {
                ticks.push(
                    n.parse::<u64>()
                        .with_context(|| format!("bad log line {line:?}"))?,
                );
            }
        }
        // 10 new lines at 5 lines/s (about 2s): they arrived over time while the
        // stream was open, not as one stored chunk.
        assert!(
            started.elapsed() >= Duration::from_millis(1200),
            "log lines did not stream: {ticks:?} in {:?}",
            started.elapsed()
        );
        assert!(
            ticks.windows(2).all(|w| w[1] == w[0] + 1),
            "log lines out of order: {ticks:?}"
        );
        Ok(())
    })
    .await
}

/// Path -> content of the regular files in an archive.
type Files = BTreeMap<String, Vec<u8>>;

fn sample_archive() -> Result<(Vec<u8>, Files)> {
    let mut files = BTreeMap::new();
    files.insert("hello.txt".to_string(), b"hello, devenv\n".to_vec());
    files.insert("dir/nested.txt".to_string(), b"nested file\n".to_vec());
    // Binary content of every byte value, larger than one websocket frame.
    files.insert(
        "dir/binary.bin".to_string(),
        (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect(),
    );
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        builder.append_data(&mut header, path, data.as_slice())?;
    }
    Ok((builder.into_inner()?, files))
}

fn read_archive(bytes: &[u8]) -> Result<Files> {
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() {
            let path = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data)?;
            files.insert(path, data);
        }
    }
    Ok(files)
}

#[tokio::test]
async fn exec_with_stdin_round_trips_a_tar_archive() -> Result<()> {
    in_namespace("exec", |client, ns| async move {
        let pod = busybox_deployment(&client, &ns, "tar").await?;
        let pod_name = pod.metadata.name.unwrap();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let (archive, files) = sample_archive()?;

        // Upload: the archive goes to tar's stdin; closing stdin ends the upload.
        let mut upload = within(
            "starting the upload exec",
            Duration::from_secs(30),
            pods.exec(
                &pod_name,
                [
                    "sh",
                    "-c",
                    "mkdir -p /tmp/rt && tar -x -C /tmp/rt && echo extracted",
                ],
                &AttachParams::default()
                    .stdin(true)
                    .stdout(true)
                    .stderr(true),
            ),
        )
        .await??;
        let mut stdin = upload.stdin().unwrap();
        let mut stdout = upload.stdout().unwrap();
        let mut stderr = upload.stderr().unwrap();
        let status = upload.take_status().unwrap();
        let write = async {
            stdin.write_all(&archive).await?;
            stdin.shutdown().await?;
            anyhow::Ok(())
        };
        let (mut out, mut err) = (String::new(), String::new());
        let (w, o, e) = within(
            "the upload exec (stdin -> tar -x)",
            Duration::from_secs(60),
            futures::future::join3(
                write,
                stdout.read_to_string(&mut out),
                stderr.read_to_string(&mut err),
            ),
        )
        .await?;
        w?;
        o?;
        e?;
        let status = within("the upload exec's status", Duration::from_secs(30), status).await?;
        assert_eq!(
            out.trim(),
            "extracted",
            "upload stdout {out:?}, stderr {err:?}, status {status:?}"
        );
        if let Some(s) = status {
            assert_eq!(
                s.status.as_deref(),
                Some("Success"),
                "upload failed: {s:?} stderr {err:?}"
            );
        }
        within(
            "closing the upload exec",
            Duration::from_secs(30),
            upload.join(),
        )
        .await??;

        // Download: tar of the extracted tree on stdout, compared byte for byte.
        let mut download = within(
            "starting the download exec",
            Duration::from_secs(30),
            pods.exec(
                &pod_name,
                ["tar", "-c", "-C", "/tmp/rt", "."],
                &AttachParams::default()
                    .stdin(false)
                    .stdout(true)
                    .stderr(true),
            ),
        )
        .await??;
        let mut stdout = download.stdout().unwrap();
        let mut stderr = download.stderr().unwrap();
        let (mut bytes, mut err) = (Vec::new(), String::new());
        let (o, e) = within(
            "the download exec (tar -c -> stdout)",
            Duration::from_secs(60),
            futures::future::join(
                stdout.read_to_end(&mut bytes),
                stderr.read_to_string(&mut err),
            ),
        )
        .await?;
        o?;
        e?;
        within(
            "closing the download exec",
            Duration::from_secs(30),
            download.join(),
        )
        .await??;
        let round_tripped = read_archive(&bytes)
            .with_context(|| format!("reading the downloaded archive (stderr {err:?})"))?;
        assert_eq!(
            round_tripped.keys().collect::<Vec<_>>(),
            files.keys().collect::<Vec<_>>()
        );
        for (path, data) in &files {
            assert!(
                round_tripped[path] == *data,
                "{path} differs after the round trip"
            );
        }
        Ok(())
    })
    .await
}

/// One HTTP/1.0 request over `stream`; reads until the whole body (per
/// Content-Length) is there. (A port-forward stream does not signal EOF when
/// the pod side closes, so reading to EOF is not an option.)
async fn http_get(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    host: &str,
) -> Result<String> {
    stream
        .write_all(
            format!("GET /index.html HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if let Some(length) = length {
                if response.len() >= end + 4 + length {
                    break;
                }
            }
        }
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test]
async fn port_forward_reaches_busybox_httpd() -> Result<()> {
    in_namespace("pf", |client, ns| async move {
        let pod = busybox_deployment(&client, &ns, "web").await?;
        let pod_name = pod.metadata.name.unwrap();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

        // Two requests over two port-forward sessions: each is a real stream.
        for attempt in 0..2 {
            let mut pf = within(
                "opening the port-forward",
                Duration::from_secs(30),
                pods.portforward(&pod_name, &[HTTP_PORT]),
            )
            .await??;
            let mut stream = pf
                .take_stream(HTTP_PORT)
                .context("no port-forward stream")?;
            let response = within(
                "an HTTP request through the port-forward",
                Duration::from_secs(30),
                http_get(&mut stream, "localhost"),
            )
            .await??;
            assert!(
                response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
                "attempt {attempt}: {response:?}"
            );
            assert!(
                response.contains(INDEX_BODY),
                "attempt {attempt}: {response:?}"
            );
            drop(stream);
            pf.abort();
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn service_is_reachable_by_dns_name_from_another_pod() -> Result<()> {
    in_namespace("dns", |client, ns| async move {
        busybox_deployment(&client, &ns, "backend").await?;

        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "backend"},
            "spec": {
                "selector": {"app": "backend"},
                "ports": [{"name": "http", "port": 80, "targetPort": HTTP_PORT}]
            }
        }))?;
        Api::<Service>::namespaced(client.clone(), &ns).create(&PostParams::default(), &service).await?;

        // A client pod resolves the Service by its short name (search path) and
        // by its fully qualified name, and fetches the page through the ClusterIP.
        // (Not `wget -T`: Debian's static busybox 1.35 segfaults with it.)
        let fqdn = format!("backend.{ns}.svc.cluster.local");
        let script = format!(
            "for i in $(seq 1 60); do \
               if nslookup {fqdn} && timeout 5 wget -q -O - http://backend/index.html && timeout 5 wget -q -O - http://{fqdn}/index.html; \
               then echo DNS-OK; exit 0; fi; sleep 1; \
             done; cat /etc/resolv.conf; exit 1"
        );
        let client_pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "client"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "client",
                    "image": busybox_image(),
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", script]
                }]
            }
        }))?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        pods.create(&PostParams::default(), &client_pod).await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let phase = loop {
            let p = pods.get("client").await?;
            let phase = p.status.and_then(|s| s.phase).unwrap_or_default();
            if phase == "Succeeded" || phase == "Failed" {
                break phase;
            }
            if Instant::now() >= deadline {
                bail!("the DNS client pod did not finish within 120s (phase {phase:?})");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let logs = pods.logs("client", &LogParams::default()).await?;
        assert_eq!(phase, "Succeeded", "DNS client pod failed; its output:\n{logs}");
        assert!(logs.contains(INDEX_BODY) && logs.contains("DNS-OK"), "unexpected output:\n{logs}");
        Ok(())
    })
    .await
}
