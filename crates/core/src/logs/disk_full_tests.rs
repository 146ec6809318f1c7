//! A full disk under the log segments, for real: a tiny tmpfs as the logs dir.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{LogHub, Query, SegmentLimits, Stream};

/// A tmpfs of `size` mounted on a fresh dir; unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs");
        std::fs::create_dir(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Self { _dir: dir, path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

fn texts(hub: &LogHub) -> Vec<String> {
    let q = Query {
        services: vec!["api".into()],
        ..Query::default()
    };
    hub.snapshot(&q).into_iter().map(|l| l.text).collect()
}

/// Every line in the segment files under `dir`.
fn on_disk(dir: &std::path::Path) -> String {
    let mut all = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "log") {
                all.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()));
            }
        }
    }
    all
}

#[tokio::test]
#[ignore = "needs root: mounts a tiny tmpfs"]
async fn a_full_disk_pauses_the_disk_log_says_so_once_and_resumes() {
    let fs = Tmpfs::mount("256k");
    let hub = LogHub::open(&fs.path, "/p#", SegmentLimits::default()).unwrap();
    let svc: Arc<str> = Arc::from("api");
    let mut follower = hub.follow(None);
    hub.push(&svc, Stream::Stdout, "before the disk filled");
    hub.flush_service("api");

    // Fill the filesystem: the write stops at ENOSPC.
    let filler = fs.path.join("filler");
    let err = std::fs::write(&filler, vec![0u8; 512 * 1024]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");

    // More than the page the first line's file already has (tmpfs allocates by
    // pages), then written out as when the producer goes idle.
    let mut batch = super::Batch::new(svc.clone());
    for i in 0..500 {
        batch.push(
            super::unix_nanos(std::time::SystemTime::now()),
            Stream::Stdout,
            &format!("while full {i}"),
        );
    }
    hub.push_batch(batch);
    hub.flush_service("api");
    let lines = texts(&hub);
    let paused: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("logs are not being written to disk"))
        .collect();
    assert_eq!(paused.len(), 1, "one line per outage: {lines:#?}");
    assert!(
        paused[0].contains("No space left on device"),
        "{}",
        paused[0]
    );
    assert!(lines.contains(&"while full 499".to_string()), "{lines:#?}");
    // The live stream lost nothing.
    let mut live = Vec::new();
    while !live.contains(&"while full 499".to_string()) {
        match tokio::time::timeout(Duration::from_secs(5), follower.recv()).await {
            Ok(Some(super::Received::Lines(lines))) => {
                live.extend(lines.into_iter().map(|l| l.text))
            }
            other => panic!("follower: {other:?} after {live:?}"),
        }
    }
    assert!((0..500).all(|i| live.contains(&format!("while full {i}"))));

    // Space again: the next line after the back-off (1 s) reaches the disk.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    while !texts(&hub)
        .iter()
        .any(|l| l.starts_with("logs are written to disk again"))
    {
        assert!(
            Instant::now() < deadline,
            "never resumed: {:#?}",
            texts(&hub)
        );
        hub.push(&svc, Stream::Stdout, &format!("after {i}"));
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hub.push(&svc, Stream::Stdout, "persisted again");
    hub.flush_service("api");
    let resumed = texts(&hub)
        .into_iter()
        .find(|l| l.starts_with("logs are written to disk again"))
        .unwrap();
    // The 500 lines buffered when the flush failed, and those pushed while paused.
    assert!(
        resumed.contains(&format!("({} lines in between", 500 + i)),
        "{resumed} (pushed {i} while paused)"
    );
    let disk = on_disk(&fs.path);
    assert!(disk.contains("before the disk filled"), "{disk}");
    assert!(disk.contains("persisted again"), "{disk}");
    assert!(disk.contains("logs are written to disk again"), "{disk}");
    assert!(!disk.contains("while full 499"), "written while full?");
}
