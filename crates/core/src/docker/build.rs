//! Image builds on the engine (`build:` of container services): the context goes to
//! the engine as a tar stream (its `.dockerignore` honoured, the Dockerfile always
//! sent), under a tag made from a hash of what is sent plus the build's arguments, so
//! an unchanged context is not built again: the engine's image of that tag is the
//! stored result.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptions;
use bollard::Docker;
use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::sync::mpsc;

use super::DockerError;
use crate::config::Build;

/// Registry part of every tag devenv builds; never pushed anywhere.
pub const REGISTRY: &str = "devenv.local";
/// Name in the tar of a Dockerfile that lives outside the context.
const OUTSIDE_DOCKERFILE: &str = ".devenv.Dockerfile";
/// Bytes of the tar sent to the engine at a time, and chunks queued ahead of it:
/// the context is never held in memory.
const TAR_CHUNK: usize = 64 * 1024;
const TAR_QUEUE: usize = 4;
/// Hex digits of the content hash in a tag.
const HASH_LEN: usize = 12;

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read the build context {}: {source}", .path.display())]
    Context {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", .path.display())]
    Ignore {
        path: PathBuf,
        #[source]
        source: ignore::Error,
    },
    #[error("the Dockerfile {} does not exist; set build.dockerfile or add one", .path.display())]
    NoDockerfile { path: PathBuf },
    /// The engine ran the build and it failed: its reason (the step and its error).
    #[error("the build failed: {reason}")]
    Failed { reason: String },
    #[error(transparent)]
    Engine(#[from] DockerError),
}

/// What a build sends: the files of the context that `.dockerignore` keeps.
#[derive(Debug, Clone)]
pub struct Plan {
    context: PathBuf,
    /// Relative paths (directories, files, symlinks), sorted.
    entries: Vec<PathBuf>,
    /// The Dockerfile's name in the tar.
    dockerfile: String,
    /// A Dockerfile outside the context, sent as [`OUTSIDE_DOCKERFILE`].
    outside: Option<PathBuf>,
    /// Hash of all of it and of the build's arguments.
    pub hash: String,
}

/// `devenv.local/<env>-<service>:<hash>` (env and service names are DNS-1123 labels,
/// so the reference is valid).
pub fn tag(env: &str, service: &str, hash: &str) -> String {
    format!("{REGISTRY}/{env}-{service}:{hash}")
}

/// Reads the context (blocking: run it off the runtime): which files go, and their hash.
pub fn plan(build: &Build) -> Result<Plan, BuildError> {
    let context = build.context.clone();
    let read = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Context { path, source }
    };
    let meta = std::fs::metadata(&context).map_err(read(&context))?;
    if !meta.is_dir() {
        return Err(BuildError::Context {
            path: context,
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let df_path = build
        .dockerfile
        .clone()
        .unwrap_or_else(|| context.join("Dockerfile"));
    if !df_path.is_file() {
        return Err(BuildError::NoDockerfile { path: df_path });
    }
    let ignore = dockerignore(&context)?;
    let (dockerfile, outside) = match df_path.strip_prefix(&context) {
        Ok(rel) => (rel.to_string_lossy().into_owned(), None),
        Err(_) => (OUTSIDE_DOCKERFILE.to_owned(), Some(df_path.clone())),
    };
    let mut entries = Vec::new();
    walk(&context, &context, &ignore, &mut entries)?;
    // The Dockerfile and .dockerignore are sent even when ignored (as docker does).
    let mut always = vec![PathBuf::from(".dockerignore")];
    if outside.is_none() {
        always.push(PathBuf::from(&dockerfile));
    }
    for rel in always {
        if context.join(&rel).is_file() && !entries.contains(&rel) {
            entries.push(rel);
        }
    }
    entries.sort();

    let mut h = Md5::new();
    for rel in &entries {
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update([0]);
        hash_entry(&mut h, &context.join(rel))?;
    }
    if let Some(df) = &outside {
        h.update(b"\0dockerfile\0");
        hash_entry(&mut h, df)?;
    }
    h.update(format!("\0dockerfile-name\0{dockerfile}").as_bytes());
    for (k, v) in &build.args {
        h.update(format!("\0arg\0{k}={v}").as_bytes());
    }
    if let Some(t) = &build.target {
        h.update(format!("\0target\0{t}").as_bytes());
    }
    let hash: String = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..HASH_LEN]
        .to_owned();
    Ok(Plan {
        context,
        entries,
        dockerfile,
        outside,
        hash,
    })
}

/// `.dockerignore` as gitignore rules anchored at the context (a docker pattern is
/// relative to the context's root: `*.log` is `/*.log`). A directory it excludes is
/// not entered, so a `!` exception under it does not bring files back.
fn dockerignore(context: &Path) -> Result<ignore::gitignore::Gitignore, BuildError> {
    let path = context.join(".dockerignore");
    let mut b = ignore::gitignore::GitignoreBuilder::new(context);
    if let Ok(text) = std::fs::read_to_string(&path) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (neg, pat) = match line.strip_prefix('!') {
                Some(p) => ("!", p.trim()),
                None => ("", line),
            };
            let pat = pat.trim_start_matches("./").trim_start_matches('/');
            b.add_line(Some(path.clone()), &format!("{neg}/{pat}"))
                .map_err(|source| BuildError::Ignore {
                    path: path.clone(),
                    source,
                })?;
        }
    }
    b.build()
        .map_err(|source| BuildError::Ignore { path, source })
}

fn walk(
    root: &Path,
    dir: &Path,
    ignore: &ignore::gitignore::Gitignore,
    out: &mut Vec<PathBuf>,
) -> Result<(), BuildError> {
    let err = |source| BuildError::Context {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(err)?;
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        if ignore.matched(&rel, kind.is_dir()).is_ignore() {
            continue;
        }
        if kind.is_dir() {
            out.push(rel);
            walk(root, &path, ignore, out)?;
        } else if kind.is_file() || kind.is_symlink() {
            out.push(rel);
        }
    }
    Ok(())
}

fn hash_entry(h: &mut Md5, path: &Path) -> Result<(), BuildError> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt;
    let err = |source| BuildError::Context {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(err)?;
    h.update(format!("{:o}\0", meta.permissions().mode() & 0o7777).as_bytes());
    if meta.file_type().is_symlink() {
        h.update(
            std::fs::read_link(path)
                .map_err(err)?
                .as_os_str()
                .as_encoded_bytes(),
        );
        return Ok(());
    }
    if meta.is_dir() {
        return Ok(());
    }
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

/// Whether the engine has `tag` (built earlier from the same content).
pub async fn exists(docker: &Docker, tag: &str) -> bool {
    docker.inspect_image(tag).await.is_ok()
}

/// Builds `plan` as `tag`, every line of the build's output to `on_line`.
pub async fn build(
    docker: &Docker,
    plan: Plan,
    build: &Build,
    tag: &str,
    labels: HashMap<String, String>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<(), BuildError> {
    let options = BuildImageOptions {
        dockerfile: plan.dockerfile.clone(),
        t: Some(tag.to_owned()),
        rm: true,
        forcerm: true,
        buildargs: (!build.args.is_empty()).then(|| {
            build
                .args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        target: build.target.clone().unwrap_or_default(),
        labels: Some(labels),
        ..Default::default()
    };
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(TAR_QUEUE);
    let writer = tokio::task::spawn_blocking(move || write_tar(&plan, tx));
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut progress = docker.build_image(options, None, Some(bollard::body_try_stream(body)));
    let mut partial = String::new();
    let mut failed = None;
    while let Some(step) = progress.next().await {
        match step {
            Ok(info) => {
                if let Some(text) = info.stream.or(info.status) {
                    partial.push_str(&text);
                    while let Some(i) = partial.find('\n') {
                        let line: String = partial.drain(..=i).collect();
                        let line = line.trim_end();
                        if !line.is_empty() {
                            on_line(line);
                        }
                    }
                }
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    failed = Some(e);
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                failed = Some(error);
                break;
            }
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    if !partial.trim().is_empty() {
        on_line(partial.trim_end());
    }
    drop(progress);
    // The writer stops at its next chunk once the engine's side is gone.
    let sent = writer.await;
    if let Some(reason) = failed {
        return Err(BuildError::Failed {
            reason: reason.trim().to_owned(),
        });
    }
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(BuildError::Failed {
            reason: format!("sending the context: {e}"),
        }),
    }
}

/// Writes the context as a tar into `tx`, a chunk at a time, waiting for room.
fn write_tar(plan: &Plan, tx: mpsc::Sender<std::io::Result<Bytes>>) -> Result<(), BuildError> {
    let out = ChunkWriter {
        tx,
        buf: Vec::with_capacity(TAR_CHUNK),
    };
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Context { path, source }
    };
    for rel in &plan.entries {
        let full = plan.context.join(rel);
        tar.append_path_with_name(&full, rel).map_err(err(&full))?;
    }
    if let Some(df) = &plan.outside {
        tar.append_path_with_name(df, OUTSIDE_DOCKERFILE)
            .map_err(err(df))?;
    }
    let mut out = tar.into_inner().map_err(err(&plan.context))?;
    out.flush().map_err(err(&plan.context))?;
    Ok(())
}

/// A `Write` into the channel the request body reads, in chunks of [`TAR_CHUNK`].
struct ChunkWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(TAR_CHUNK));
        self.tx.blocking_send(Ok(Bytes::from(chunk))).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the engine stopped reading")
        })
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = TAR_CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= TAR_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_of(dir: &Path) -> Build {
        Build {
            context: dir.to_path_buf(),
            dockerfile: None,
            args: Default::default(),
            target: None,
            tarball: None,
        }
    }

    #[test]
    fn dockerignore_is_anchored_and_the_dockerfile_always_goes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(
            d.join(".dockerignore"),
            "# cache\n*.log\nbuild/\nDockerfile\n!keep.log\n",
        )
        .unwrap();
        std::fs::write(d.join("a.log"), "x").unwrap();
        std::fs::write(d.join("keep.log"), "x").unwrap();
        std::fs::create_dir_all(d.join("src")).unwrap();
        std::fs::write(d.join("src/b.log"), "x").unwrap();
        std::fs::create_dir_all(d.join("build")).unwrap();
        std::fs::write(d.join("build/out"), "x").unwrap();
        let plan = plan(&build_of(d)).unwrap();
        let names: Vec<String> = plan
            .entries
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "keep.log",
                "src",
                "src/b.log"
            ],
            "`*.log` is the root's only; build/ is out"
        );
    }

    #[test]
    fn the_hash_follows_content_args_and_target_not_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(d.join(".dockerignore"), "tmp\n").unwrap();
        std::fs::write(d.join("app"), "1").unwrap();
        let mut b = build_of(d);
        let first = plan(&b).unwrap().hash;
        assert_eq!(first.len(), HASH_LEN);
        assert_eq!(plan(&b).unwrap().hash, first, "stable");
        std::fs::write(d.join("tmp"), "ignored").unwrap();
        assert_eq!(
            plan(&b).unwrap().hash,
            first,
            "an ignored file does not count"
        );
        std::fs::write(d.join("app"), "2").unwrap();
        let second = plan(&b).unwrap().hash;
        assert_ne!(second, first);
        b.args.insert("MODE".into(), "dev".into());
        let third = plan(&b).unwrap().hash;
        assert_ne!(third, second);
        b.target = Some("x".into());
        assert_ne!(plan(&b).unwrap().hash, third);
    }

    #[test]
    fn a_missing_dockerfile_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = plan(&build_of(dir.path())).unwrap_err();
        assert!(matches!(e, BuildError::NoDockerfile { .. }), "{e}");
    }

    #[test]
    fn the_tar_holds_the_planned_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(d.join("big"), vec![7u8; 3 * TAR_CHUNK + 5]).unwrap();
        let outside = tempfile::tempdir().unwrap();
        let df = outside.path().join("web.Dockerfile");
        std::fs::write(&df, "FROM y\n").unwrap();
        let mut b = build_of(d);
        b.dockerfile = Some(df);
        let plan = plan(&b).unwrap();
        assert_eq!(plan.dockerfile, OUTSIDE_DOCKERFILE);
        let (tx, mut rx) = mpsc::channel(TAR_QUEUE);
        let writer = std::thread::spawn(move || write_tar(&plan, tx));
        let mut bytes = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= TAR_CHUNK);
            bytes.extend_from_slice(&chunk);
        }
        writer.join().unwrap().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, [OUTSIDE_DOCKERFILE, "Dockerfile", "big"]);
    }
}
