//! A receiver that floods the session with endless lines, in a process of its own so
//! that the peak RSS measured is this test's alone (the other sync tests run in
//! parallel threads of theirs).

use std::path::PathBuf;

use devenv_core::sync::{Session, SyncError};

/// The peak resident memory of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A receiver that answers `L` with a 64 MiB listing line and `P` with a 64 MiB line of
/// garbage, each without a newline until its end.
const HOSTILE: &str = r#"echo "R $1"
huge() { head -c 67108864 /dev/zero | tr '\0' x; }
while read -r t id rest; do
  case $t in
  L) printf 'S 81a4 1 2 3 ./'; huge; printf '\n'; echo "A $id" ;;
  P) huge; printf '\n'; echo "A $id" ;;
  esac
done
"#;

#[tokio::test]
async fn a_receiver_sending_endless_lines_costs_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote");
    let local: PathBuf = tmp.path().join("local");
    std::fs::create_dir_all(&remote).unwrap();
    std::fs::create_dir_all(&local).unwrap();
    let mut command = tokio::process::Command::new("sh");
    command.arg("-c").arg(HOSTILE).arg("hostile").arg(&remote);
    let mut s = Session::open_command(command, "hostile".into(), local, vec![])
        .await
        .unwrap();
    let before = peak_rss();
    // A 64 MiB listing line is a name too long to keep: left alone, the sync goes on.
    let st = s.initial_sync().await.unwrap();
    assert_eq!((st.written, st.deleted), (0, 0), "{st:?}");
    assert!(s.status().notice.is_some());
    // A 64 MiB line of garbage is a protocol error, found within the first bytes.
    let e = s.ping().await.unwrap_err();
    assert!(matches!(e, SyncError::Protocol { .. }), "{e}");
    assert!(e.is_fatal());
    let grown = peak_rss().saturating_sub(before);
    eprintln!(
        "peak RSS {} MiB, grown by {} KiB over two 64 MiB lines",
        peak_rss() >> 20,
        grown >> 10
    );
    assert!(
        grown < 24 << 20,
        "peak RSS grew by {} MiB reading 64 MiB lines",
        grown >> 20
    );
}
