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

/// Every file below `root`, relative, sorted.
fn files_in(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_owned();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn is_source_error(e: &SyncError) -> bool {
    e.is_source() && !e.is_fatal()
}

/// The bug this guards against: after `mv site elsewhere` and a receiver restart the
/// pod lost all 21 files of its target, because the initial sync compared it with an
/// empty local tree. A source that vanished deletes nothing, in the running session and
/// after a reconnect; when it is back, the rule resumes.
#[tokio::test]
async fn a_source_that_vanishes_deletes_nothing_also_after_a_reconnect() {
    let d = dirs();
    for i in 0..21 {
        write(&d.local, &format!("page{}/f{i}.html", i % 3), "x");
    }
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    s.initial_sync().await.unwrap();
    let before = files_in(&d.remote);
    assert_eq!(before.len(), 21);

    // `mv site elsewhere`: the watcher then reports every path as removed.
    let elsewhere = d.outside.join("elsewhere");
    std::fs::rename(&d.local, &elsewhere).unwrap();
    let removed: Vec<Change> = before.iter().map(|p| rm(p)).collect();
    let e = s.apply(&removed).await.unwrap_err();
    assert!(is_source_error(&e), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = s.apply(&[rm("page0")]).await.unwrap_err();
    assert!(is_source_error(&e), "{e}");
    let e = s.initial_sync().await.unwrap_err();
    assert!(is_source_error(&e), "{e}");
    assert!(s.status().connected);
    assert_eq!(files_in(&d.remote), before);

    // The receiver restarts: a new session's initial sync deletes nothing either.
    s.close().await.unwrap();
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    let e = s.initial_sync().await.unwrap_err();
    assert!(is_source_error(&e), "{e}");
    let e = s.full_sync().await.unwrap_err();
    assert!(is_source_error(&e), "{e}");
    assert_eq!(files_in(&d.remote), before, "files deleted in the target");

    // Not a directory: same.
    std::fs::write(&d.local, "a file now").unwrap();
    let e = s.initial_sync().await.unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    assert_eq!(files_in(&d.remote), before);
    std::fs::remove_file(&d.local).unwrap();

    // Back (one file edited meanwhile): the initial sync resumes, deleting nothing.
    std::fs::rename(&elsewhere, &d.local).unwrap();
    write(&d.local, "page0/f0.html", "edited");
    assert!(s.status().last_error.is_some());
    let st = s.initial_sync().await.unwrap();
    assert_eq!((st.written, st.deleted), (1, 0), "{st:?}");
    assert_eq!(
        s.status().last_error,
        None,
        "cleared once the directory is back"
    );
    assert_eq!(s.verify().await.unwrap(), vec![]);
    s.apply(&[w("page0/f0.html")]).await.unwrap();
    assert_eq!(files_in(&d.remote), before);
}

/// A directory replaced under a running session (a branch switch recreating it, `mv
/// site old && mkdir site`) is not diffed change by change against the old one.
#[tokio::test]
async fn a_replaced_source_stops_changes_until_the_next_initial_sync() {
    let d = dirs();
    write(&d.local, "a.txt", "a");
    write(&d.local, "b.txt", "b");
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    s.initial_sync().await.unwrap();
    std::fs::rename(&d.local, d.outside.join("old")).unwrap();
    std::fs::create_dir(&d.local).unwrap();
    write(&d.local, "a.txt", "new a");
    let e = s.apply(&[w("a.txt"), rm("b.txt")]).await.unwrap_err();
    assert!(is_source_error(&e), "{e}");
    assert!(e.to_string().contains("moved or replaced"), "{e}");
    assert_eq!(files_in(&d.remote), ["a.txt", "b.txt"]);
    // The initial sync adopts the new directory.
    let st = s.initial_sync().await.unwrap();
    assert_eq!((st.written, st.deleted), (1, 1), "{st:?}");
    assert_eq!(files_in(&d.remote), ["a.txt"]);
    assert_eq!(s.status().notice, None);
}

/// `rm -rf site` empties the directory before removing it: the events say "everything
/// deleted" while the directory still exists for a moment. That reads as a missing
/// source (nothing deleted), whichever comes first.
#[tokio::test]
async fn a_source_emptied_then_removed_deletes_nothing() {
    let d = dirs();
    for i in 0..21 {
        write(&d.local, &format!("f{i}.html"), "x");
    }
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    s.initial_sync().await.unwrap();
    let before = files_in(&d.remote);
    let removed: Vec<Change> = before.iter().map(|p| rm(p)).collect();
    for f in &before {
        std::fs::remove_file(d.local.join(f)).unwrap();
    }
    // The last step of the `rm -rf`, while the session plans the deletes.
    let root = d.local.clone();
    let rmdir = std::thread::spawn(move || std::fs::remove_dir(root).unwrap());
    let e = s.apply(&removed).await.unwrap_err();
    rmdir.join().unwrap();
    assert!(is_source_error(&e), "{e}");
    assert_eq!(files_in(&d.remote), before, "files deleted in the target");
}

/// Emptying a non-empty target needs a local directory that was read and found empty,
/// and says so in the status.
#[tokio::test]
async fn emptying_the_target_needs_a_really_empty_source_and_is_reported() {
    let d = dirs();
    write(&d.local, "x/one", "1");
    write(&d.local, "two", "2");
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    s.initial_sync().await.unwrap();

    // Really empty (`rm -rf site/*`): the deletes are applied, and reported.
    std::fs::remove_dir_all(d.local.join("x")).unwrap();
    std::fs::remove_file(d.local.join("two")).unwrap();
    let st = s.apply(&[rm("x"), rm("two")]).await.unwrap();
    assert_eq!(st.deleted, 2, "{st:?}");
    assert!(files_in(&d.remote).is_empty());
    let notice = s.status().notice.unwrap_or_default();
    assert!(notice.contains("emptied"), "{notice}");

    // The same through an initial sync.
    write(&d.local, "three", "3");
    s.initial_sync().await.unwrap();
    std::fs::remove_file(d.local.join("three")).unwrap();
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    assert_eq!(s.status().notice, None);
    let st = s.initial_sync().await.unwrap();
    assert_eq!(st.deleted, 1, "{st:?}");
    assert!(s.status().notice.unwrap_or_default().contains("emptied"));
}

/// An unreadable source is an error and deletes nothing. Root reads anything, so as root
/// the test runs itself again as `nobody` (from a copy of this binary that user can
/// execute) and passes only if that run passed.
#[tokio::test]
async fn an_unreadable_source_is_an_error_and_deletes_nothing() {
    const NAME: &str = "an_unreadable_source_is_an_error_and_deletes_nothing";
    if nix::unistd::geteuid().is_root() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = tmp.path().join("sync_local");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&exe)
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("TMPDIR", "/tmp")
            .output()
            .expect("setpriv (util-linux) is needed to run this test as nobody when root");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("1 passed"),
            "the run as nobody failed:\n{text}"
        );
        return;
    }
    let d = dirs();
    write(&d.local, "x/one", "1");
    write(&d.local, "two", "2");
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    s.initial_sync().await.unwrap();
    std::fs::set_permissions(&d.local, std::fs::Permissions::from_mode(0o000)).unwrap();
    let e = s.initial_sync().await.unwrap_err();
    std::fs::set_permissions(&d.local, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(e.is_source() || matches!(e, SyncError::Local { .. }), "{e}");
    assert_eq!(files_in(&d.remote), ["two", "x/one"]);
}

/// A synced directory replaced by a symlink to somewhere else: the link is synced as a
/// link; nothing of what it points to is read or sent.
#[tokio::test]
async fn a_directory_replaced_by_a_symlink_sends_nothing_from_outside() {
    let d = dirs();
    write(&d.local, "sub/page.html", "mine");
    write(&d.outside, "secret.txt", "s3cret");
    write(&d.outside, "page.html", "s3cret");
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    s.initial_sync().await.unwrap();
    std::fs::remove_dir_all(d.local.join("sub")).unwrap();
    symlink(&d.outside, d.local.join("sub")).unwrap();
    // Stale and fresh events alike, as a watcher would report them.
    s.apply(&[w("sub/page.html"), w("sub/secret.txt"), w("sub")])
        .await
        .unwrap();
    let link = d.remote.join("sub");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), d.outside);
    // Nothing the link points to was copied into the target.
    let copied = walk_no_follow(&d.remote);
    assert_eq!(copied, ["sub"], "{copied:?}");
    // A fresh initial sync does not walk through it either.
    let st = s.initial_sync().await.unwrap();
    assert_eq!(st.written, 0, "{st:?}");
    assert_eq!(walk_no_follow(&d.remote), ["sub"]);
    assert_eq!(files_in(&d.outside), ["page.html", "secret.txt"]);
}

/// Every path below `root`, without following symlinks.
fn walk_no_follow(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            let rel = e.path().strip_prefix(root).unwrap().to_owned();
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// Names in the target that are not UTF-8 are left alone (also the directories that
/// hold them), reported once, and the session keeps working.
#[tokio::test]
async fn names_that_are_not_utf8_are_left_alone_and_reported() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let d = dirs();
    let latin1 = OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::create_dir_all(d.remote.join("old")).unwrap();
    std::fs::write(d.remote.join("old").join(latin1), "legacy").unwrap();
    std::fs::write(d.remote.join("old/plain.txt"), "plain").unwrap();
    std::fs::write(d.remote.join(OsStr::from_bytes(b"\xff")), "top").unwrap();
    std::fs::write(d.remote.join("extra.txt"), "extra").unwrap();
    write(&d.local, "keep.txt", "keep");
    let mut s = Session::open_local(&d.remote, d.local.clone(), vec![])
        .await
        .unwrap();
    let st = s.initial_sync().await.unwrap();
    assert_eq!((st.written, st.deleted), (1, 2), "{st:?}");
    assert!(d.remote.join("old").join(latin1).exists());
    assert!(d.remote.join(OsStr::from_bytes(b"\xff")).exists());
    assert!(!d.remote.join("old/plain.txt").exists());
    assert!(!d.remote.join("extra.txt").exists());
    let status = s.status();
    let notice = status.notice.clone().unwrap_or_default();
    assert!(
        notice.contains("2 name(s)") && notice.contains("UTF-8"),
        "{notice}"
    );
    assert!(status.connected);
    assert_eq!(status.errors, 0, "{status:?}");
    // Again, and after a change: no error, nothing more deleted.
    let again = s.initial_sync().await.unwrap();
    assert_eq!((again.written, again.deleted), (0, 0), "{again:?}");
    s.apply(&[rm("old")]).await.unwrap();
    assert!(d.remote.join("old").join(latin1).exists());
    s.ping().await.unwrap();
    assert!(s.status().connected);
}
