//! Sync into a busybox pod of the real test cluster: every kind of change, confinement,
//! a 5,000-change burst checked by checksums, initial sync of differences only, and the
//! figures of issue 6 (printed; run with --nocapture).
//!
//! Needs the cluster of `tests/cluster/up.sh` (or any cluster) in `KUBECONFIG` and the
//! image `devenv.test/busybox:1.35.0` (`DEVENV_TEST_BUSYBOX_IMAGE` overrides it). Run:
//! `KUBECONFIG=... cargo test -p devenv-core --test sync -- --ignored --nocapture`

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use devenv_core::sync::{Change, Session, SyncError, SyncTarget};
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio::io::AsyncReadExt;

const TARGET: &str = "/app";

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

/// Runs `body` with a fresh namespace holding one ready busybox pod, deleted afterwards
/// whether the body passed, failed or panicked.
async fn with_pod<F, Fut>(prefix: &str, body: F) -> Result<()>
where
    F: FnOnce(Client, String, String) -> Fut,
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
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        let accounts = &accounts;
        poll(
            "the default service account",
            Duration::from_secs(30),
            || async move { Ok(accounts.get_opt("default").await?.is_some()) },
        )
        .await?;
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "target" },
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{
                    "name": "main",
                    "image": busybox_image(),
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "100000"],
                }]
            }
        }))?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
        pods.create(&PostParams::default(), &pod).await?;
        let pods = &pods;
        poll("a ready pod", Duration::from_secs(120), || async move {
            let p = pods.get("target").await?;
            Ok(p.status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")))
        })
        .await?;
        body(client.clone(), name.clone(), "target".to_owned()).await
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

/// Runs `script` in the pod with its own exec (independent of the sync stream).
async fn sh(client: &Client, ns: &str, pod: &str, script: &str) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut p = pods
        .exec(
            pod,
            ["sh", "-c", script],
            &AttachParams::default().stdout(true).stderr(true),
        )
        .await?;
    let mut stdout = p.stdout().context("stdout")?;
    let mut stderr = p.stderr().context("stderr")?;
    let (mut out, mut err) = (String::new(), String::new());
    let (o, e) = tokio::time::timeout(
        Duration::from_secs(60),
        futures::future::join(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err),
        ),
    )
    .await
    .context("exec timed out")?;
    o?;
    e?;
    p.join().await?;
    ensure!(err.is_empty(), "{script}: stderr {err:?}");
    Ok(out)
}

async fn open(client: &Client, ns: &str, pod: &str, local: &Path) -> Result<Session> {
    Ok(Session::open(
        SyncTarget {
            client: client.clone(),
            namespace: ns.to_owned(),
            pod: pod.to_owned(),
            container: None,
            remote_dir: TARGET.to_owned(),
        },
        local.to_owned(),
        vec!["*.map".to_owned()],
    )
    .await?)
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn w(p: &str) -> Change {
    Change::Write(p.into())
}

fn rm(p: &str) -> Change {
    Change::Remove(p.into())
}

/// MD5 of every file below `root`, by relative path.
fn local_sums(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                let sum = devenv_core::sync::md5_file(&e.path()).unwrap();
                out.insert(rel, sum.iter().map(|b| format!("{b:02x}")).collect());
            }
        }
    }
    out
}

async fn remote_sums(client: &Client, ns: &str, pod: &str) -> Result<BTreeMap<String, String>> {
    let out = sh(
        client,
        ns,
        pod,
        &format!("cd {TARGET} && find . -type f -exec md5sum {{}} +"),
    )
    .await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(sum, p)| (p.trim_start_matches("./").to_owned(), sum.to_owned()))
        .collect())
}

#[tokio::test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
async fn k8s_every_kind_of_change_reaches_the_pod() -> Result<()> {
    with_pod("sync-kinds", |client, ns, pod| async move {
        let tmp = tempfile::tempdir()?;
        let l = tmp.path();
        write(l, "keep.txt", b"keep");
        write(l, "old/inner/x.txt", b"x");
        let mut s = open(&client, &ns, &pod, l).await?;
        s.initial_sync().await?;

        write(l, "a/b/c/new.txt", b"new");
        write(l, "keep.txt", b"edited");
        std::fs::set_permissions(l.join("keep.txt"), std::fs::Permissions::from_mode(0o750))?;
        std::fs::remove_dir_all(l.join("old"))?;
        write(l, "ren-src", b"moved");
        s.apply(&[w("ren-src")]).await?;
        std::fs::rename(l.join("ren-src"), l.join("ren-dst"))?;
        std::fs::remove_file(l.join("ren-dst")).ok();
        write(l, "ren-dst", b"moved");
        symlink("../keep.txt", l.join("a/link"))?;
        write(l, "app.js.map", b"excluded");
        s.apply(&[
            w("a"),
            w("a/b/c/new.txt"),
            w("keep.txt"),
            rm("old"),
            rm("ren-src"),
            w("ren-dst"),
            w("a/link"),
            w("app.js.map"),
        ])
        .await?;
        let out = sh(
            &client,
            &ns,
            &pod,
            "cd /app && cat a/b/c/new.txt && echo && cat keep.txt && echo && stat -c %a keep.txt \
             && readlink a/link && cat ren-dst && echo && ls -A",
        )
        .await?;
        assert_eq!(
            out, "new\nedited\n750\n../keep.txt\nmoved\na\nkeep.txt\nren-dst\n",
            "pod tree after the changes"
        );
        assert_eq!(s.verify().await?, vec![]);
        assert_eq!(s.status().errors, 0);
        s.close().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
async fn k8s_confinement() -> Result<()> {
    with_pod("sync-confine", |client, ns, pod| async move {
        let tmp = tempfile::tempdir()?;
        let l = tmp.path();
        sh(
            &client,
            &ns,
            &pod,
            "mkdir -p /app /tmp/outside && ln -s /tmp/outside /app/evil",
        )
        .await?;
        let mut s = open(&client, &ns, &pod, l).await?;
        for bad in ["../x", "a/../../x", "/etc/passwd"] {
            let e = s.apply(&[w(bad)]).await.unwrap_err();
            assert!(matches!(e, SyncError::Path { .. }), "{bad}: {e}");
        }
        write(l, "evil/x", b"pwned");
        let e = s.apply(&[w("evil/x")]).await.unwrap_err();
        assert!(matches!(e, SyncError::Refused { .. }), "{e}");
        let e = s.apply(&[rm("evil/x")]).await.unwrap_err();
        assert!(matches!(e, SyncError::Refused { .. }), "{e}");
        let outside = sh(&client, &ns, &pod, "ls -A /tmp/outside").await?;
        assert_eq!(outside, "", "something was written outside the target");
        // The stream is still in step.
        s.ping().await?;
        s.close().await?;
        Ok(())
    })
    .await
}

/// `mv site elsewhere` mid-session, then a new session (a receiver restart): nothing is
/// deleted in the pod; back in place, the rule resumes. Names in the pod that are not
/// UTF-8 are left alone and the session keeps working.
#[tokio::test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
async fn k8s_a_vanished_source_deletes_nothing_also_after_a_reconnect() -> Result<()> {
    with_pod("sync-vanish", |client, ns, pod| async move {
        let tmp = tempfile::tempdir()?;
        let site = tmp.path().join("site");
        for i in 0..21 {
            write(&site, &format!("p{}/f{i}.html", i % 3), b"x");
        }
        let mut s = open(&client, &ns, &pod, &site).await?;
        s.initial_sync().await?;
        let before = remote_sums(&client, &ns, &pod).await?;
        assert_eq!(before.len(), 21);

        let elsewhere = tmp.path().join("elsewhere");
        std::fs::rename(&site, &elsewhere)?;
        let removed: Vec<Change> = before.keys().map(|p| rm(p)).collect();
        let e = s.apply(&removed).await.unwrap_err();
        assert!(e.is_source(), "{e}");
        s.close().await?;
        let mut s = open(&client, &ns, &pod, &site).await?;
        let e = s.initial_sync().await.unwrap_err();
        assert!(e.is_source(), "{e}");
        assert_eq!(
            remote_sums(&client, &ns, &pod).await?,
            before,
            "files deleted in the pod"
        );

        std::fs::rename(&elsewhere, &site)?;
        let st = s.initial_sync().await?;
        assert_eq!((st.written, st.deleted), (0, 0), "{st:?}");

        // A name that is not UTF-8, in a directory the local tree lacks.
        sh(
            &client,
            &ns,
            &pod,
            "mkdir -p /app/old && touch \"$(printf '/app/old/caf\\351')\" /app/old/plain",
        )
        .await?;
        let st = s.initial_sync().await?;
        assert_eq!(st.deleted, 1, "{st:?}");
        let left = sh(&client, &ns, &pod, "ls /app/old | wc -l").await?;
        assert_eq!(left.trim(), "1", "the non-UTF-8 name was deleted");
        assert!(s.status().notice.is_some());
        s.ping().await?;
        s.close().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
async fn k8s_burst_of_5000_changes_matches_by_checksum() -> Result<()> {
    with_pod("sync-burst", |client, ns, pod| async move {
        let tmp = tempfile::tempdir()?;
        let l = tmp.path();
        let mut s = open(&client, &ns, &pod, l).await?;
        s.initial_sync().await?;
        let mut changes = Vec::new();
        let mut i = 0;
        while changes.len() < 5000 {
            let p = format!("burst/d{}/f{i}", i % 50);
            write(l, &p, format!("v1 {i}").as_bytes());
            changes.push(w(&p));
            match i % 4 {
                1 => {
                    write(l, &p, format!("v2 {i} {}", "y".repeat(i % 300)).as_bytes());
                    changes.push(w(&p));
                }
                2 => {
                    let to = format!("burst/d{}/renamed{i}", (i + 1) % 50);
                    std::fs::create_dir_all(l.join(&to).parent().unwrap())?;
                    std::fs::rename(l.join(&p), l.join(&to))?;
                    changes.push(rm(&p));
                    changes.push(w(&to));
                }
                3 => {
                    std::fs::remove_file(l.join(&p))?;
                    changes.push(rm(&p));
                }
                _ => {}
            }
            i += 1;
        }
        let started = Instant::now();
        let stats = s.apply(&changes).await?;
        println!(
            "burst: {} changes applied in {:?} ({stats:?})",
            changes.len(),
            started.elapsed()
        );
        assert_eq!(s.verify().await?, vec![]);
        let (local, remote) = (local_sums(l), remote_sums(&client, &ns, &pod).await?);
        assert_eq!(local.len(), remote.len());
        assert!(local == remote, "checksums differ");
        s.close().await?;
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
async fn k8s_initial_sync_skips_identical_files() -> Result<()> {
    with_pod("sync-initial", |client, ns, pod| async move {
        let tmp = tempfile::tempdir()?;
        let l = tmp.path();
        for i in 0..300 {
            write(l, &format!("d{}/f{i}", i % 10), &vec![b'x'; i]);
        }
        sh(
            &client,
            &ns,
            &pod,
            "mkdir -p /app/stale && echo x > /app/stale/f",
        )
        .await?;
        let mut s = open(&client, &ns, &pod, l).await?;
        let first = s.initial_sync().await?;
        assert_eq!(first.written, 310, "{first:?}");
        assert_eq!(first.deleted, 1, "{first:?}");
        let second = s.initial_sync().await?;
        assert_eq!((second.written, second.deleted), (0, 0), "{second:?}");
        assert_eq!(second.unchanged, 310);
        s.close().await?;
        // A new session (a restarted pod keeps its files) also sends nothing.
        let mut again = open(&client, &ns, &pod, l).await?;
        assert_eq!(again.initial_sync().await?.written, 0);
        Ok(())
    })
    .await
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The figures of issue 6, printed (no timing assertions: benchmarks are programs).
#[tokio::test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
async fn k8s_figures() -> Result<()> {
    with_pod("sync-figures", |client, ns, pod| async move {
        let tmp = tempfile::tempdir()?;
        let l = tmp.path();
        let mut s = open(&client, &ns, &pod, l).await?;
        s.initial_sync().await?;

        // One-file save -> applied in the pod (the ack comes after tar has written it).
        let mut saves = Vec::new();
        for i in 0..100 {
            write(l, "src/main.py", format!("print({i})\n").as_bytes());
            let t = Instant::now();
            s.apply(&[w("src/main.py")]).await?;
            saves.push(t.elapsed());
        }
        saves.sort();
        let content = sh(&client, &ns, &pod, "cat /app/src/main.py").await?;
        assert_eq!(content, "print(99)\n");
        let mut pings = Vec::new();
        for _ in 0..100 {
            pings.push(s.ping().await?);
        }
        pings.sort();

        // kubectl cp of one file, side by side.
        let kubectl = std::env::var("KUBECTL")
            .unwrap_or_else(|_| "/var/tmp/devenv-test-cluster/bin/kubectl".to_owned());
        let mut cps = Vec::new();
        if Path::new(&kubectl).exists() {
            for _ in 0..20 {
                let t = Instant::now();
                let st = tokio::process::Command::new(&kubectl)
                    .args(["cp", "-n", &ns])
                    .arg(l.join("src/main.py"))
                    .arg(format!("{pod}:/tmp/main.py"))
                    .status()
                    .await?;
                ensure!(st.success(), "kubectl cp failed");
                cps.push(t.elapsed());
            }
            cps.sort();
        }

        // Initial sync of 10k files / 100 MB, then re-sync of the unchanged tree.
        let big = tmp.path().join("big");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for i in 0..10_000 {
            let size = if i % 100 == 0 { 500_000 } else { 5_050 };
            let mut data = vec![0u8; size];
            for chunk in data.chunks_mut(8) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let b = seed.to_le_bytes();
                chunk.copy_from_slice(&b[..chunk.len()]);
            }
            write(&big, &format!("m{}/p{}/f{i}.bin", i % 20, i % 7), &data);
        }
        sh(&client, &ns, &pod, "mkdir -p /big").await?;
        let mut bs = Session::open(
            SyncTarget {
                client: client.clone(),
                namespace: ns.clone(),
                pod: pod.clone(),
                container: None,
                remote_dir: "/big".into(),
            },
            big.clone(),
            vec![],
        )
        .await?;
        let first = bs.initial_sync().await?;
        let again = bs.initial_sync().await?;
        assert_eq!(again.written, 0);
        assert_eq!(bs.verify().await?, vec![]);

        println!("sync figures (pod on this machine):");
        println!(
            "  save -> applied in pod: p50 {:?} p99 {:?} (min {:?}, max {:?}) over 100",
            percentile(&saves, 0.5),
            percentile(&saves, 0.99),
            saves[0],
            saves[99]
        );
        println!(
            "  stream round trip (ping): p50 {:?} p99 {:?}",
            percentile(&pings, 0.5),
            percentile(&pings, 0.99)
        );
        if !cps.is_empty() {
            println!(
                "  kubectl cp of one file: p50 {:?} p99 {:?} over {}",
                percentile(&cps, 0.5),
                percentile(&cps, 0.99),
                cps.len()
            );
        }
        println!(
            "  initial sync {} entries / {} MB: {:?} ({} batches)",
            first.written,
            first.bytes / 1_000_000,
            first.duration,
            first.batches
        );
        println!(
            "  re-sync unchanged ({} entries): {:?}",
            again.unchanged, again.duration
        );
        Ok(())
    })
    .await
}
