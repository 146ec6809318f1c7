//! The sync protocol end to end without a cluster: the receiver script runs under the
//! host's `sh` (with the host's dd, tar, find, stat, md5sum) and writes into a temp
//! directory, so every kind of change and the confinement rules are checked on disk.
//! The same scenarios against a real pod are in `sync.rs`.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use devenv_core::sync::{Change, DiffKind, Session, SyncError};

struct Dirs {
    _tmp: tempfile::TempDir,
    local: PathBuf,
    remote: PathBuf,
    outside: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    let remote = tmp.path().join("remote");
    let outside = tmp.path().join("outside");
    for d in [&local, &outside] {
        std::fs::create_dir_all(d).unwrap();
    }
    Dirs {
        local,
        remote,
        outside,
        _tmp: tmp,
    }
}

fn write(root: &Path, rel: &str, content: &str) {
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

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn every_kind_of_change_lands() {
    let d = dirs();
    write(&d.local, "keep.txt", "keep");
    write(&d.local, "old/inner/x.txt", "x");
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec!["*.map".into()])
        .await
        .unwrap();
    let first = s.initial_sync().await.unwrap();
    assert_eq!(first.written, 4, "{first:?}");
    assert_eq!(
        std::fs::read_to_string(d.remote.join("old/inner/x.txt")).unwrap(),
        "x"
    );

    // create (nested), edit, chmod, delete file, delete dir, rename, symlink, excluded
    write(&d.local, "a/b/c/new.txt", "new");
    write(&d.local, "keep.txt", "edited");
    std::fs::set_permissions(
        d.local.join("keep.txt"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::remove_dir_all(d.local.join("old")).unwrap();
    write(&d.local, "ren-src", "moved");
    s.apply(&[w("ren-src")]).await.unwrap();
    std::fs::rename(d.local.join("ren-src"), d.local.join("ren-dst")).unwrap();
    symlink("/etc/passwd", d.local.join("link")).unwrap();
    write(&d.local, "app.js.map", "excluded");
    let stats = s
        .apply(&[
            w("a"),
            w("a/b/c/new.txt"),
            w("keep.txt"),
            rm("old"),
            rm("ren-src"),
            w("ren-dst"),
            w("link"),
            w("app.js.map"),
        ])
        .await
        .unwrap();
    assert!(stats.deleted >= 2, "{stats:?}");
    let r = &d.remote;
    assert_eq!(
        std::fs::read_to_string(r.join("a/b/c/new.txt")).unwrap(),
        "new"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("keep.txt")).unwrap(),
        "edited"
    );
    assert_eq!(mode(&r.join("keep.txt")), 0o750);
    assert!(!r.join("old").exists());
    assert!(!r.join("ren-src").exists());
    assert_eq!(std::fs::read_to_string(r.join("ren-dst")).unwrap(), "moved");
    assert_eq!(
        std::fs::read_link(r.join("link")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(!r.join("app.js.map").exists());

    // A file becomes a directory and back.
    std::fs::remove_file(d.local.join("ren-dst")).unwrap();
    write(&d.local, "ren-dst/inside", "i");
    s.apply(&[w("ren-dst/inside"), w("ren-dst")]).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(r.join("ren-dst/inside")).unwrap(),
        "i"
    );
    std::fs::remove_dir_all(d.local.join("ren-dst")).unwrap();
    write(&d.local, "ren-dst", "file again");
    s.apply(&[w("ren-dst"), rm("ren-dst/inside")])
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(r.join("ren-dst")).unwrap(),
        "file again"
    );

    assert_eq!(s.verify().await.unwrap(), vec![]);
    let status = s.status();
    assert!(status.connected && status.files > 0 && status.last_sync.is_some());
    assert_eq!(status.errors, 0);
}

#[tokio::test]
async fn escaping_paths_are_refused_before_sending() {
    let d = dirs();
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    for bad in ["../x", "a/../../x", "/etc/passwd"] {
        let e = s.apply(&[w(bad)]).await.unwrap_err();
        assert!(matches!(e, SyncError::Path { .. }), "{bad}: {e}");
        let e = s.apply(&[rm(bad)]).await.unwrap_err();
        assert!(matches!(e, SyncError::Path { .. }), "{bad}: {e}");
    }
    assert!(s.status().connected);
    s.ping().await.unwrap();
}

#[tokio::test]
async fn symlinks_in_the_target_are_not_written_through() {
    let d = dirs();
    std::fs::create_dir_all(&d.remote).unwrap();
    symlink(&d.outside, d.remote.join("evil")).unwrap();
    write(&d.outside, "victim", "untouched");
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    write(&d.local, "evil/x", "pwned");
    write(&d.local, "evil/deeper/y", "pwned");
    let e = s
        .apply(&[w("evil/x"), w("evil/deeper/y")])
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("symlink"), "{e}");
    // Deleting through it is refused too.
    let e = s.apply(&[rm("evil/victim")]).await.unwrap_err();
    assert!(matches!(e, SyncError::Refused { .. }), "{e}");
    let outside: Vec<_> = std::fs::read_dir(&d.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["victim"]);
    assert_eq!(
        std::fs::read_to_string(d.outside.join("victim")).unwrap(),
        "untouched"
    );
    // The stream stays usable, and a write that replaces a symlink replaces the link.
    symlink(d.outside.join("victim"), d.remote.join("file-link")).unwrap();
    write(&d.local, "file-link", "new");
    s.apply(&[w("file-link")]).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(d.outside.join("victim")).unwrap(),
        "untouched"
    );
    assert_eq!(
        std::fs::read_to_string(d.remote.join("file-link")).unwrap(),
        "new"
    );
    assert!(!std::fs::symlink_metadata(d.remote.join("file-link"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[tokio::test]
async fn initial_sync_sends_only_differences_and_respects_excludes() {
    let d = dirs();
    for i in 0..200 {
        write(&d.local, &format!("d{}/f{i}.txt", i % 7), &"x".repeat(i));
    }
    write(&d.remote, "stale/extra.txt", "remove me");
    write(&d.remote, "cache/keep.tmp", "excluded: stays");
    write(&d.remote, "d1/f1.txt", "different");
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec!["*.tmp".into()])
        .await
        .unwrap();
    let first = s.initial_sync().await.unwrap();
    // 200 files and 7 directories, of which d1/ was there already.
    assert_eq!((first.written, first.unchanged), (206, 1), "{first:?}");
    assert!(!d.remote.join("stale").exists());
    assert!(d.remote.join("cache/keep.tmp").exists());
    assert_eq!(s.verify().await.unwrap(), vec![]);
    let again = s.initial_sync().await.unwrap();
    assert_eq!(
        (again.written, again.deleted, again.batches),
        (0, 0, 0),
        "{again:?}"
    );
    assert_eq!(again.unchanged, 207);

    // A change made in the container behind the session's back is found.
    std::fs::write(d.remote.join("d2/f2.txt"), "tampered").unwrap();
    let diffs = s.verify().await.unwrap();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(diffs[0].kind, DiffKind::Content);
}

#[tokio::test]
async fn a_burst_of_changes_converges() {
    let d = dirs();
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    s.initial_sync().await.unwrap();
    let changes = burst(&d.local, 2000);
    s.apply(&changes).await.unwrap();
    assert_eq!(s.verify().await.unwrap(), vec![]);
}

/// Creates, edits, renames and deletes, as an editor or a code generator would.
fn burst(root: &Path, n: usize) -> Vec<Change> {
    let mut changes = Vec::new();
    for i in 0..n {
        let p = format!("burst/d{}/f{i}", i % 50);
        write(root, &p, &format!("v1 {i}"));
        changes.push(w(&p));
        match i % 4 {
            1 => write(root, &p, &format!("v2 {i} {}", "y".repeat(i % 300))),
            2 => {
                let to = format!("burst/d{}/renamed{i}", (i + 1) % 50);
                std::fs::create_dir_all(root.join(&to).parent().unwrap()).unwrap();
                std::fs::rename(root.join(&p), root.join(&to)).unwrap();
                changes.push(rm(&p));
                changes.push(w(&to));
            }
            3 => {
                std::fs::remove_file(root.join(&p)).unwrap();
                changes.push(rm(&p));
            }
            _ => {}
        }
    }
    changes
}

/// The initial sync's quick check: equal size and mtime are trusted unless the
/// receiver wrote the file within a couple of seconds of its mtime (it may have been
/// edited again in the same second); `full_sync` and `verify` compare by content.
#[tokio::test]
async fn the_quick_check_hashes_racy_files_and_full_sync_hashes_all() {
    use std::time::{Duration, SystemTime};
    let d = dirs();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let set_mtime = |p: &Path, t: SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    write(&d.local, "old.txt", "aaaa");
    set_mtime(&d.local.join("old.txt"), an_hour_ago);
    write(&d.local, "fresh.txt", "bbbb");
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    assert_eq!(s.initial_sync().await.unwrap().written, 2);
    assert_eq!(s.initial_sync().await.unwrap().written, 0);

    // Same size, same mtime, different content in the container.
    for (name, content) in [("old.txt", "AAAA"), ("fresh.txt", "BBBB")] {
        let remote = d.remote.join(name);
        let local_mtime = mtime(&d.local.join(name));
        std::fs::write(&remote, content).unwrap();
        set_mtime(&remote, local_mtime);
    }
    // fresh.txt was written right after its mtime: hashed, found, sent again.
    // old.txt was written an hour after its mtime: trusted, like rsync does.
    let quick = s.initial_sync().await.unwrap();
    assert_eq!((quick.written, quick.unchanged), (1, 1), "{quick:?}");
    assert_eq!(
        std::fs::read_to_string(d.remote.join("fresh.txt")).unwrap(),
        "bbbb"
    );
    let diffs = s.verify().await.unwrap();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(
        (diffs[0].path.as_str(), diffs[0].kind),
        ("old.txt", DiffKind::Content)
    );
    assert_eq!(s.full_sync().await.unwrap().written, 1);
    assert_eq!(
        std::fs::read_to_string(d.remote.join("old.txt")).unwrap(),
        "aaaa"
    );
    assert_eq!(s.verify().await.unwrap(), vec![]);
}
