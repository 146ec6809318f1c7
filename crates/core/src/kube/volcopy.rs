//! A persistent volume claim's files in and out of the cluster for `devenv snapshot`:
//! a helper pod that mounts the claim (read-only to save) and runs `tar` (and a few
//! shell lines) through exec; the caller reads or writes the tar stream. No CSI is
//! needed; [`snapshot_classes`] says whether the cluster could do CSI snapshots.
//!
//! Restore stages the files in a directory inside the claim ([`STAGING`]) and then
//! swaps them in by renames ([`SWAP`]): the old files are moved aside, not removed,
//! until [`COMMIT`]; [`UNDO`] puts them back. A rename within one filesystem either
//! happens or not, so a failure at any point leaves the old files in place or
//! recoverable by `UNDO`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, AttachParams, AttachedProcess, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::{error, ClusterConn, KubeError, MANAGED_BY, MANAGED_BY_VALUE};

/// The helper pod's image when the config names none: a small image with `sh`,
/// `tar`, `find`, `stat` and `xargs` (busybox's applets).
pub const DEFAULT_IMAGE: &str = "busybox:1.36";
/// Where the helper pod mounts the claim.
pub const MOUNT: &str = "/data";
/// The staging directory of a restore, inside the claim.
pub const STAGING: &str = ".devenv-restore";
/// How long a helper pod may take to start (image pull included), and pods to go.
const START_LIMIT: Duration = Duration::from_secs(180);
/// Bytes of a helper command's stderr kept for its error.
const STDERR_MAX: usize = 4096;
/// Bytes per stream the attach buffers.
const ATTACH_BUFFER: usize = 256 * 1024;
/// Label of helper pods (not the environment's label: `down` must not delete one
/// in the middle of a restore's swap).
const HELPER_LABEL: &str = "devenv.dev/snapshot-helper-of";

/// Moves the claim's entries aside into `.devenv-old`, then the staged ones in.
/// Leaves `.devenv-old` for COMMIT or UNDO. `$1`, `$2`, `$3`: the root's mode, uid
/// and gid from the snapshot.
pub const SWAP: &str = r#"set -u
cd /data || exit 1
each() { for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do [ -e "$f" ] || [ -L "$f" ] || continue; echo "$f"; done; }
[ -d .devenv-restore ] || { echo "no staged files" >&2; exit 1; }
rm -rf .devenv-old && mkdir .devenv-old || exit 1
for f in * .[!.]* ..?*; do
  case "$f" in .devenv-old|.devenv-restore) continue;; esac
  [ -e "$f" ] || [ -L "$f" ] || continue
  mv -- "$f" .devenv-old/ || exit 1
done
for f in .devenv-restore/* .devenv-restore/.[!.]* .devenv-restore/..?*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  mv -- "$f" . || exit 1
done
rmdir .devenv-restore || exit 1
chmod "$1" /data && chown "$2:$3" /data
exit 0
"#;

/// Puts back what SWAP moved: the entries now in the claim go back to the staging
/// dir, those in `.devenv-old` come back.
pub const UNDO: &str = r#"set -u
cd /data || exit 1
[ -d .devenv-old ] || exit 0
mkdir -p .devenv-restore || exit 1
for f in * .[!.]* ..?*; do
  case "$f" in .devenv-old|.devenv-restore) continue;; esac
  [ -e "$f" ] || [ -L "$f" ] || continue
  mv -- "$f" .devenv-restore/ || exit 1
done
for f in .devenv-old/* .devenv-old/.[!.]* .devenv-old/..?*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  mv -- "$f" . || exit 1
done
rmdir .devenv-old && rm -rf .devenv-restore
"#;

/// Removes what SWAP set aside.
pub const COMMIT: &str = "rm -rf /data/.devenv-old /data/.devenv-restore";

/// Every entry of the claim as `mode(hex) size uid gid mtime ctime ctime(human, with
/// nanoseconds) path` lines, after a first line with the node's file clock: the
/// ctime of a file just made (busybox's `date` has no nanoseconds; a file's time is
/// the clock the kernel stamps files with). What a re-save compares with its last
/// record ([`parse_list`]).
pub const LIST: &str = "cd /data && : > /tmp/.devenv-clock && stat -c '%Z %z' /tmp/.devenv-clock && find . -xdev -exec stat -c '%f %s %u %g %Y %Z %z %n' {} + ";
/// Every entry of the claim, NUL-terminated (exact names, whatever they hold).
pub const NAMES: &str = "cd /data && find . -xdev -print0";
/// A tar of the entries named on stdin (NUL-terminated), not descending.
pub const TAR_NAMED: &str = "cd /data && xargs -0 -r tar -c -f - --no-recursion";
/// Unpacks a tar from stdin into a fresh staging dir.
pub const UNTAR_STAGED: &str =
    "cd /data && rm -rf .devenv-restore .devenv-old && mkdir .devenv-restore && tar -x -f - -C .devenv-restore";
/// Removes a staging dir left by a failed restore.
pub const CLEAN_STAGED: &str = "rm -rf /data/.devenv-restore";

/// A helper pod mounting one claim.
pub struct Helper {
    api: Api<Pod>,
    pub name: String,
    pub claim: String,
    context: String,
}

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helper")
            .field("name", &self.name)
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

/// A started helper command: its streams and the end.
pub struct HelperExec {
    pub process: AttachedProcess,
    stderr: tokio::task::JoinHandle<String>,
    what: String,
}

impl HelperExec {
    /// Waits for the command's end: `Ok` on exit 0, else an error with its stderr.
    pub async fn finish(mut self) -> Result<(), KubeError> {
        let status = match self.process.take_status() {
            Some(s) => s.await,
            None => None,
        };
        let stderr = self.stderr.await.unwrap_or_default();
        let code = status.as_ref().and_then(super::exec::exit_code);
        if code == Some(0) {
            return Ok(());
        }
        let code = code.map_or_else(|| "an unknown status".to_owned(), |c| format!("exit {c}"));
        Err(KubeError::new(
            format!("{} ended with {code}: {}", self.what, stderr.trim()),
            "see the helper pod's message; the snapshot helper image must have sh, tar, find, stat and xargs (spec.cluster.snapshotImage)",
        ))
    }
}

impl Helper {
    /// Creates a pod that mounts `claim` at [`MOUNT`] and waits until it runs.
    pub async fn start(
        conn: &ClusterConn,
        claim: &str,
        image: &str,
        read_only: bool,
    ) -> Result<Self, KubeError> {
        let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
        let suffix: String = format!("{:08x}", rand_u32());
        let base: String = claim.chars().take(40).collect();
        let name = format!("devenv-snap-{}-{suffix}", base.trim_end_matches('-'));
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "labels": { MANAGED_BY: MANAGED_BY_VALUE, HELPER_LABEL: conn.env },
            },
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                // Root: the files keep their owners (tar restores them only as root).
                "securityContext": { "runAsUser": 0, "runAsGroup": 0 },
                "containers": [{
                    "name": "copy",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"],
                    "volumeMounts": [{ "name": "data", "mountPath": MOUNT, "readOnly": read_only }],
                }],
                "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": claim, "readOnly": read_only } }],
            }
        }))
        .map_err(|e| KubeError::new(format!("helper pod spec: {e}"), ""))?;
        api.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| error::explain(&e, &conn.context))?;
        let helper = Self {
            api: api.clone(),
            name: name.clone(),
            claim: claim.to_owned(),
            context: conn.context.clone(),
        };
        let running = tokio::time::timeout(
            START_LIMIT,
            await_condition(api.clone(), &name, conditions::is_pod_running()),
        )
        .await;
        match running {
            Ok(Ok(_)) => Ok(helper),
            Ok(Err(e)) => {
                helper.remove().await;
                Err(KubeError::new(
                    format!("waiting for helper pod {name}: {e}"),
                    "",
                ))
            }
            Err(_) => {
                let why = api
                    .get(&name)
                    .await
                    .ok()
                    .and_then(|p| p.status)
                    .and_then(|s| s.container_statuses)
                    .and_then(|c| c.into_iter().next())
                    .and_then(|c| c.state)
                    .and_then(|s| s.waiting)
                    .map(|w| {
                        format!(
                            "{}: {}",
                            w.reason.unwrap_or_default(),
                            w.message.unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| "not scheduled or not started".into());
                helper.remove().await;
                Err(KubeError::new(
                    format!(
                        "the snapshot helper pod for claim {claim} did not start within {}s ({why})",
                        START_LIMIT.as_secs()
                    ),
                    format!("the image `{image}` must be pullable by the cluster (spec.cluster.snapshotImage), and the claim mountable"),
                ))
            }
        }
    }

    /// Runs `script` under `sh -c` (with `args` as `$1`...), stdin open when asked.
    pub async fn exec(
        &self,
        what: &str,
        script: &str,
        args: &[String],
        stdin: bool,
    ) -> Result<HelperExec, KubeError> {
        let mut argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            script.to_owned(),
            "sh".to_owned(),
        ];
        argv.extend(args.iter().cloned());
        let params = AttachParams::default()
            .container("copy")
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            .max_stdin_buf_size(ATTACH_BUFFER)
            .max_stdout_buf_size(ATTACH_BUFFER)
            .max_stderr_buf_size(ATTACH_BUFFER);
        let mut process = self
            .api
            .exec(&self.name, argv, &params)
            .await
            .map_err(|e| error::explain(&e, &self.context))?;
        let stderr = process.stderr();
        let stderr = tokio::spawn(async move {
            let Some(mut s) = stderr else {
                return String::new();
            };
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            // Read to the end (the command must not block on a full pipe), keep the
            // first STDERR_MAX bytes.
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = STDERR_MAX.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            String::from_utf8_lossy(&kept).into_owned()
        });
        Ok(HelperExec {
            process,
            stderr,
            what: format!("{what} in helper pod {}", self.name),
        })
    }

    /// Runs `script` and collects its stdout (at most `limit` bytes).
    pub async fn output(
        &self,
        what: &str,
        script: &str,
        args: &[String],
        limit: usize,
    ) -> Result<Vec<u8>, KubeError> {
        let mut run = self.exec(what, script, args, false).await?;
        let mut out = Vec::new();
        if let Some(mut s) = run.process.stdout() {
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = s
                    .read(&mut buf)
                    .await
                    .map_err(|e| KubeError::new(format!("{what}: {e}"), ""))?;
                if n == 0 {
                    break;
                }
                if out.len() + n > limit {
                    return Err(KubeError::new(
                        format!("{what}: more than {limit} bytes of output"),
                        "",
                    ));
                }
                out.extend_from_slice(&buf[..n]);
            }
        }
        run.finish().await?;
        Ok(out)
    }

    /// Deletes the pod (at once; its command is a sleep).
    pub async fn remove(self) {
        let _ = self
            .api
            .delete(&self.name, &DeleteParams::default().grace_period(0))
            .await;
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

/// The claim's spec as a restore re-creates it (size, access modes, class) when it
/// is gone, with devenv's labels; `None` when there is no such claim.
pub async fn claim_spec(
    conn: &ClusterConn,
    claim: &str,
) -> Result<Option<serde_json::Value>, KubeError> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let Some(pvc) = api
        .get_opt(claim)
        .await
        .map_err(|e| error::explain(&e, &conn.context))?
    else {
        return Ok(None);
    };
    let spec = pvc.spec.unwrap_or_default();
    Ok(Some(json!({
        "labels": pvc.metadata.labels.unwrap_or_default(),
        "accessModes": spec.access_modes,
        "storageClassName": spec.storage_class_name,
        "resources": spec.resources.and_then(|r| r.requests),
    })))
}

/// Makes the claim if it does not exist, from the spec [`claim_spec`] recorded.
pub async fn ensure_claim(
    conn: &ClusterConn,
    claim: &str,
    spec: &serde_json::Value,
) -> Result<bool, KubeError> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(conn.client.clone(), &conn.namespace);
    if api
        .get_opt(claim)
        .await
        .map_err(|e| error::explain(&e, &conn.context))?
        .is_some()
    {
        return Ok(false);
    }
    let mut body = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": { "name": claim, "labels": spec["labels"] },
        "spec": {
            "accessModes": spec["accessModes"],
            "resources": { "requests": spec["resources"] },
        }
    });
    if spec["storageClassName"].is_string() {
        body["spec"]["storageClassName"] = spec["storageClassName"].clone();
    }
    let pvc: PersistentVolumeClaim = serde_json::from_value(body)
        .map_err(|e| KubeError::new(format!("claim {claim}'s recorded spec: {e}"), ""))?;
    api.create(&PostParams::default(), &pvc)
        .await
        .map_err(|e| error::explain(&e, &conn.context))?;
    Ok(true)
}

/// The cluster's VolumeSnapshotClasses (CSI snapshots); empty when the API is not
/// served (no snapshot controller) or none is defined.
pub async fn snapshot_classes(conn: &ClusterConn) -> Result<Vec<String>, KubeError> {
    let gvk = GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshotClass");
    let ar = ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> = Api::all_with(conn.client.clone(), &ar);
    match api.list(&Default::default()).await {
        Ok(list) => Ok(list
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(error::explain(&e, &conn.context)),
    }
}

/// Waits until no pod matches `selector` (a workload scaled to 0 has let go of its
/// volumes), watching, under a deadline.
pub async fn wait_no_pods(conn: &ClusterConn, selector: &str) -> Result<(), KubeError> {
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let stream = watcher(api, watcher::Config::default().labels(selector)).default_backoff();
    let wait = async {
        let mut stream = std::pin::pin!(stream);
        let (mut live, mut init): (HashSet<String>, HashSet<String>) = Default::default();
        let mut synced = false;
        while let Some(ev) = stream.try_next().await.map_err(|e| e.to_string())? {
            match ev {
                watcher::Event::Init => init.clear(),
                watcher::Event::InitApply(p) => {
                    init.insert(p.metadata.name.unwrap_or_default());
                }
                watcher::Event::InitDone => {
                    live = std::mem::take(&mut init);
                    synced = true;
                }
                watcher::Event::Apply(p) => {
                    live.insert(p.metadata.name.unwrap_or_default());
                }
                watcher::Event::Delete(p) => {
                    live.remove(&p.metadata.name.unwrap_or_default());
                }
            }
            if synced && live.is_empty() {
                return Ok(());
            }
        }
        Err("the watch ended".to_owned())
    };
    match tokio::time::timeout(START_LIMIT, wait).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(KubeError::new(
            format!("waiting for the pods of {selector} to stop: {e}"),
            "",
        )),
        Err(_) => Err(KubeError::new(
            format!(
                "the pods of {selector} did not stop within {}s",
                START_LIMIT.as_secs()
            ),
            "`kubectl get pods -l` shows what holds them",
        )),
    }
}

/// A claim's entries as [`LIST`] gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The node's clock (seconds) when the listing began.
    pub clock: Option<i64>,
    /// Each regular file's (size, mtime) by its path relative to the claim (`a/b`).
    pub files: BTreeMap<String, (u64, i64)>,
    /// BLAKE3 of every entry's type, mode, owner, path and, for files and links,
    /// size, mtime and ctime to the nanosecond (directories' times change with
    /// entries that are themselves listed, and with files a save leaves out).
    pub fingerprint: String,
    /// No entry was changed at or after [`Listing::clock`] (to the nanosecond): a
    /// later change gives a later ctime, so the fingerprint can stand for the data.
    pub trusted: bool,
}

/// `%Z %z` (seconds, then `YYYY-MM-DD HH:MM:SS.NNNNNNNNN +ZZZZ`) as nanoseconds.
fn nanos(secs: &str, time: &str) -> Option<i128> {
    let secs: i128 = secs.parse().ok()?;
    let frac = time.split_once('.').map_or("", |(_, f)| f);
    let digits: String = frac
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    let frac: i128 = format!("{digits:0<9}").parse().ok()?;
    Some(secs * 1_000_000_000 + frac)
}

/// Parses [`LIST`]'s output. Lines it cannot read (a name with a newline) leave the
/// listing untrusted, and those files count as changed.
pub fn parse_list(out: &[u8]) -> Listing {
    let text = String::from_utf8_lossy(out);
    let mut lines = text.lines();
    let clock_line = lines.next().unwrap_or_default();
    let mut parts = clock_line.split(' ');
    let clock_s = parts.next().unwrap_or_default();
    let clock_ns = parts.nth(1).and_then(|time| nanos(clock_s, time));
    let mut listing = Listing {
        clock: clock_s.parse().ok(),
        trusted: clock_ns.is_some(),
        ..Listing::default()
    };
    let mut records = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.splitn(10, ' ').collect();
        let parsed = (f.len() == 10).then(|| {
            let mode = u32::from_str_radix(f[0], 16).ok()?;
            let size: u64 = f[1].parse().ok()?;
            let mtime: i64 = f[4].parse().ok()?;
            let ctime = nanos(f[5], f[7])?;
            Some((
                mode,
                size,
                mtime,
                ctime,
                f[9].strip_prefix("./").or((f[9] == ".").then_some("."))?,
            ))
        });
        let Some(Some((mode, size, mtime, ctime, rel))) = parsed else {
            listing.trusted = false;
            continue;
        };
        let kind = mode & 0o170_000;
        if kind == 0o100_000 {
            listing.files.insert(rel.to_owned(), (size, mtime));
        }
        if kind == 0o040_000 {
            records.push(format!("{mode:o} {} {} {rel}", f[2], f[3]));
        } else {
            records.push(format!(
                "{mode:o} {} {} {size} {mtime} {ctime} {rel}",
                f[2], f[3]
            ));
            if clock_ns.is_some_and(|c| ctime >= c) {
                listing.trusted = false;
            }
        }
    }
    records.sort();
    let mut h = blake3::Hasher::new();
    for r in &records {
        h.update(r.as_bytes());
        h.update(b"\n");
    }
    listing.fingerprint = h.finalize().to_hex().to_string();
    listing
}

/// Splits [`NAMES`]'s output into paths relative to the claim (`.` for the root).
pub fn parse_names(out: &[u8]) -> Vec<Vec<u8>> {
    out.split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| n.to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_gives_the_clock_each_file_and_a_fingerprint_trusted_only_before_the_clock() {
        let clock = "1700000100 2023-11-14 22:15:00.500000000 +0000\n";
        let body = "41ed 4096 0 0 1700000000 1700000000 2023-11-14 22:13:20.000000000 +0000 .\n\
                    81a4 12 0 0 1700000000 1700000000 2023-11-14 22:13:20.250000000 +0000 ./a\n\
                    81a4 0 1 2 1700000001 1700000001 2023-11-14 22:13:21.000000000 +0000 ./dir/b c\n\
                    garbage\n";
        let l = parse_list(format!("{clock}{body}").as_bytes());
        assert_eq!(l.clock, Some(1_700_000_100));
        assert_eq!(l.files["a"], (12, 1_700_000_000));
        assert_eq!(l.files["dir/b c"], (0, 1_700_000_001));
        assert_eq!(l.files.len(), 2);
        assert!(!l.trusted, "a line it cannot read");
        let clean = body.replace("garbage\n", "");
        let l = parse_list(format!("{clock}{clean}").as_bytes());
        assert!(l.trusted);
        // A directory's times alone do not change it; a file's ctime in nanoseconds does.
        let dir_touched = clean.replace(
            "1700000000 1700000000 2023-11-14 22:13:20.000000000 +0000 .",
            "1700000050 1700000050 2023-11-14 22:14:10.000000000 +0000 .",
        );
        assert_eq!(
            parse_list(format!("{clock}{dir_touched}").as_bytes()).fingerprint,
            l.fingerprint
        );
        let file_touched = clean.replace(
            "22:13:20.250000000 +0000 ./a",
            "22:13:20.250000001 +0000 ./a",
        );
        assert_ne!(
            parse_list(format!("{clock}{file_touched}").as_bytes()).fingerprint,
            l.fingerprint
        );
        // Changed at the clock's nanosecond or later: not trusted.
        let racy = clean.replace(
            "1700000001 1700000001 2023-11-14 22:13:21.000000000",
            "1700000100 1700000100 2023-11-14 22:15:00.500000000",
        );
        assert!(!parse_list(format!("{clock}{racy}").as_bytes()).trusted);
        assert_eq!(
            parse_names(b".\0./a\0./we\nird\0"),
            vec![b".".to_vec(), b"./a".to_vec(), b"./we\nird".to_vec()]
        );
    }
}
