//! Followers against a real hub and real segment files in a temp dir.

use std::sync::Arc;
use std::time::Duration;

use super::{
    Batch, LogHub, LogLine, MissReason, Missed, Query, Received, SegmentLimits, Stream, RING_LINES,
};

fn batch(service: &Arc<str>, from: u64, n: u64) -> Batch {
    let mut b = Batch::new(service.clone());
    for i in from..from + n {
        b.push(1_000 + i as i64, Stream::Stdout, &format!("{service} {i}"));
    }
    b
}

/// Everything the follower hands out until `want` lines came, with the markers.
async fn collect(f: &mut super::Follower, want: usize) -> (Vec<LogLine>, Vec<Missed>) {
    let mut lines = Vec::new();
    let mut missed = Vec::new();
    while lines.len() < want {
        match tokio::time::timeout(Duration::from_secs(10), f.recv()).await {
            Ok(Some(Received::Lines(l))) => lines.extend(l),
            Ok(Some(Received::Missed(m))) => missed.push(m),
            other => panic!("after {} lines: {other:?}", lines.len()),
        }
    }
    (lines, missed)
}

fn texts(lines: &[LogLine]) -> Vec<String> {
    lines.iter().map(|l| l.text.clone()).collect()
}

#[tokio::test]
async fn a_follower_far_behind_reads_the_disk_then_rejoins_memory() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(dir.path(), "/p#", SegmentLimits::default()).unwrap();
    let svc: Arc<str> = Arc::from("api");
    let mut f = hub.follow(None);
    // Ten rings' worth before the follower reads anything.
    let total = RING_LINES as u64 * 10;
    for i in (0..total).step_by(500) {
        hub.push_batch(batch(&svc, i, 500));
    }
    let (lines, missed) = collect(&mut f, total as usize).await;
    assert!(missed.is_empty(), "{missed:?}");
    let want: Vec<String> = (0..total).map(|i| format!("api {i}")).collect();
    assert_eq!(texts(&lines), want);
    assert!(lines.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    // Live again: the next line comes from memory, once.
    hub.push_batch(batch(&svc, total, 1));
    let (lines, _) = collect(&mut f, 1).await;
    assert_eq!(texts(&lines), [format!("api {total}")]);
}

#[tokio::test]
async fn a_merged_follow_keeps_the_hub_order_across_services() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(dir.path(), "/p#", SegmentLimits::default()).unwrap();
    let names: Vec<Arc<str>> = (0..5).map(|i| Arc::from(format!("s{i}"))).collect();
    let mut f = hub.follow(None);
    let mut slow = hub.follow(Some(vec![names[1].clone(), names[3].clone()]));
    let per = 8_000u64;
    for i in (0..per).step_by(100) {
        for n in &names {
            hub.push_batch(batch(n, i, 100));
        }
    }
    let (lines, missed) = collect(&mut f, (per * 5) as usize).await;
    assert!(missed.is_empty(), "{missed:?}");
    assert_eq!(lines.len() as u64, per * 5);
    assert!(lines.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(lines.windows(2).all(|w| w[0].time <= w[1].time));
    for n in &names {
        let mine: Vec<String> = lines
            .iter()
            .filter(|l| l.service == *n)
            .map(|l| l.text.clone())
            .collect();
        assert_eq!(
            mine,
            (0..per).map(|i| format!("{n} {i}")).collect::<Vec<_>>()
        );
    }
    let (lines, _) = collect(&mut slow, (per * 2) as usize).await;
    assert_eq!(lines.len() as u64, per * 2);
    assert!(lines
        .iter()
        .all(|l| &*l.service == "s1" || &*l.service == "s3"));
    assert!(lines.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test]
async fn lines_deleted_by_retention_give_one_exact_marker() {
    let dir = tempfile::tempdir().unwrap();
    let limits = SegmentLimits {
        segment_bytes: 64 * 1024,
        service_bytes: 256 * 1024,
        env_bytes: 1 << 30,
    };
    let hub = LogHub::open(dir.path(), "/p#", limits).unwrap();
    let svc: Arc<str> = Arc::from("api");
    let mut f = hub.follow(None);
    // ~30 bytes a line on disk: 100k lines are ~3 MB, far past the 256 KB cap.
    let total = 100_000u64;
    for i in (0..total).step_by(250) {
        hub.push_batch(batch(&svc, i, 250));
    }
    let mut lines = Vec::new();
    let mut missed = Vec::new();
    while lines.len() as u64 + missed.iter().map(|m: &Missed| m.lines).sum::<u64>() < total {
        match tokio::time::timeout(Duration::from_secs(10), f.recv()).await {
            Ok(Some(Received::Lines(l))) => lines.extend(l),
            Ok(Some(Received::Missed(m))) => missed.push(m),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0].reason, MissReason::Retention);
    assert_eq!(&*missed[0].service, "api");
    // Exactly the lines before the first one read.
    let first: u64 = lines[0].text["api ".len()..].parse().unwrap();
    assert_eq!(missed[0].lines, first);
    let want: Vec<String> = (first..total).map(|i| format!("api {i}")).collect();
    assert_eq!(texts(&lines), want);
}

#[tokio::test]
async fn a_follower_without_a_disk_log_is_told_what_left_memory() {
    let hub = LogHub::new();
    let svc: Arc<str> = Arc::from("api");
    let mut f = hub.follow(None);
    let total = RING_LINES as u64 * 2;
    for i in (0..total).step_by(100) {
        hub.push_batch(batch(&svc, i, 100));
    }
    let (lines, missed) = collect(&mut f, RING_LINES).await;
    assert_eq!(
        missed,
        [Missed {
            service: svc.clone(),
            lines: RING_LINES as u64,
            reason: MissReason::NotOnDisk
        }]
    );
    assert_eq!(lines[0].text, format!("api {RING_LINES}"));
}

#[tokio::test]
async fn resuming_from_a_position_neither_repeats_nor_skips_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
    let position = {
        let hub = LogHub::open(dir.path(), "/p#", SegmentLimits::default()).unwrap();
        for i in (0..30_000).step_by(1000) {
            hub.push_batch(batch(&a, i, 1000));
            hub.push_batch(batch(&b, i, 1000));
        }
        let all = hub.snapshot(&Query::default());
        hub.flush();
        // A client had every line up to b's 4999th.
        all.iter().find(|l| l.text == "b 4999").unwrap().seq
    };
    let hub = LogHub::open(dir.path(), "/p#", SegmentLimits::default()).unwrap();
    hub.push_batch(batch(&a, 30_000, 10));
    let mut f = hub.resume(position + 1, None);
    let (lines, missed) = collect(&mut f, 2 * 25_000 + 10).await;
    assert!(missed.is_empty(), "{missed:?}");
    assert_eq!(lines[0].text, "a 5000");
    assert_eq!(lines[1000].text, "b 5000");
    assert_eq!(lines.last().unwrap().text, "a 30009");
    assert!(lines.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(lines.len(), 2 * 25_000 + 10);
    // Only services asked for.
    let mut only_b = hub.resume(position + 1, Some(vec![b.clone()]));
    let (lines, _) = collect(&mut only_b, 25_000).await;
    assert_eq!(lines[0].text, "b 5000");
    assert!(lines.iter().all(|l| l.service == b));
}
