//! Image builds for services with `build:`, under a tag derived from the build
//! context's content, and for a k3d cluster the import of the image into the
//! cluster's nodes.
//!
//! One builder: when a Docker (or Podman) engine answers at `DOCKER_HOST` or the
//! default socket, the engine's API builds, as for container services
//! ([`crate::docker::build`]: `.dockerignore` honoured, nothing built when the engine
//! has the tag already). Only without a reachable engine does a CLI on the client's
//! PATH build: docker (when its own engine answers, e.g. through a docker context),
//! else buildah, else nerdctl (rootless and containerd-only machines).
//!
//! With `spec.cluster.image.registry` the image is pushed there instead ([`push`]:
//! the engine's image exported, or the CLI builder's saved, as an OCI layout tarball;
//! without any builder, the `build.tarball` the config names) and the workload runs
//! it by digest, so any cluster that reaches the registry can. Other clusters without
//! a registry get the local tag only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::push::{self, PushError};
use super::tools::{self, DockerProblem};
use super::{k3d, KubeError};
use crate::config::{Build, Cluster, ClusterProvider, ImageRegistry};
use crate::scratch::Scratch;

/// Registry part of every tag devenv builds; never pushed anywhere.
pub const REGISTRY: &str = "devenv.local";

const BUILD_DEADLINE: Duration = Duration::from_secs(30 * 60);
const SAVE_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// Hex digits of the content hash in a tag.
const HASH_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    Docker,
    Buildah,
    Nerdctl,
}

impl Builder {
    /// In the order they are tried.
    pub const ALL: [Builder; 3] = [Builder::Docker, Builder::Buildah, Builder::Nerdctl];

    pub fn program(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Buildah => "buildah",
            Self::Nerdctl => "nerdctl",
        }
    }
}

/// A builder and its binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub builder: Builder,
    pub program: PathBuf,
}

/// The first usable builder: docker only when its engine answers (a docker client
/// without an engine cannot build), buildah and nerdctl when on PATH.
pub async fn detect(vars: &BTreeMap<String, String>) -> Result<Found, KubeError> {
    let docker = match tools::docker_engine(vars).await {
        Ok(program) => {
            return Ok(Found {
                builder: Builder::Docker,
                program,
            })
        }
        Err(problem) => problem,
    };
    for builder in [Builder::Buildah, Builder::Nerdctl] {
        if let Some(program) = tools::find_program(builder.program(), vars) {
            return Ok(Found { builder, program });
        }
    }
    let docker_note = match docker {
        DockerProblem::NotInstalled => String::new(),
        DockerProblem::Unreachable(reason) => format!(" (docker is installed, but: {reason})"),
    };
    Err(KubeError::new(
        format!(
            "no image builder found: building images needs docker with a running engine, buildah or nerdctl on PATH{docker_note}"
        ),
        "install one: Docker (https://docs.docker.com/engine/install/), buildah \
         (https://buildah.io) or nerdctl (https://github.com/containerd/nerdctl)",
    ))
}

/// The Dockerfile of a build: `dockerfile:` or `<context>/Dockerfile`.
pub fn dockerfile(build: &Build) -> PathBuf {
    build
        .dockerfile
        .clone()
        .unwrap_or_else(|| build.context.join("Dockerfile"))
}

/// `devenv.local/<env>-<service>:<id>` (env and service names are DNS-1123 labels,
/// so the reference is valid).
pub fn tag(env: &str, service: &str, id: &str) -> String {
    format!("{REGISTRY}/{env}-{service}:{id}")
}

/// `docker build -t TAG -f DOCKERFILE CONTEXT` and its equivalents.
pub fn build_args(builder: Builder, tag: &str, build: &Build) -> Vec<String> {
    let verb = match builder {
        Builder::Docker | Builder::Nerdctl => "build",
        Builder::Buildah => "bud",
    };
    let mut args = vec![
        verb.into(),
        "-t".into(),
        tag.into(),
        "-f".into(),
        dockerfile(build).display().to_string(),
    ];
    for (k, v) in &build.args {
        args.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    if let Some(t) = &build.target {
        args.extend(["--target".into(), t.clone()]);
    }
    args.push(build.context.display().to_string());
    args
}

/// Writes the image to a tarball `k3d image import` can read. None for docker: k3d
/// imports straight from the Docker engine.
pub fn save_args(builder: Builder, tag: &str, tarball: &Path) -> Option<Vec<String>> {
    let tar = tarball.display().to_string();
    match builder {
        Builder::Docker => None,
        Builder::Buildah => Some(vec![
            "push".into(),
            tag.into(),
            format!("docker-archive:{tar}:{tag}"),
        ]),
        Builder::Nerdctl => Some(vec!["save".into(), "-o".into(), tar, tag.into()]),
    }
}

/// A short hash of the build's inputs: every file's path and bytes under the context
/// (`.git` aside), plus the Dockerfile. Same inputs, same tag, so an unchanged service
/// keeps its image and its pods. (`.dockerignore` is not read: an ignored change only
/// costs a rebuild.)
pub fn content_hash(build: &Build) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect_files(&build.context, &build.context, &mut files)?;
    files.sort();
    let mut h = Fnv::new();
    for rel in &files {
        h.write(rel.as_os_str().as_encoded_bytes());
        h.write(&[0]);
        hash_file(&mut h, &build.context.join(rel))?;
    }
    let df = dockerfile(build);
    if !df.starts_with(&build.context) {
        h.write(b"\0dockerfile\0");
        hash_file(&mut h, &df)?;
    }
    for (k, v) in &build.args {
        h.write(format!("\0arg\0{k}={v}").as_bytes());
    }
    if let Some(t) = &build.target {
        h.write(format!("\0target\0{t}").as_bytes());
    }
    Ok(format!("{:016x}", h.0)[..HASH_LEN].to_owned())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if entry.file_name() != ".git" {
                collect_files(root, &path, out)?;
            }
        } else if kind.is_file() || kind.is_symlink() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

fn hash_file(h: &mut Fnv, path: &Path) -> std::io::Result<()> {
    use std::io::Read as _;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        h.write(std::fs::read_link(path)?.as_os_str().as_encoded_bytes());
        return Ok(());
    }
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        h.write(&buf[..n]);
    }
}

/// FNV-1a, 64 bit: stable across Rust releases (a tag must not change with the
/// compiler), and this is not a security boundary.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Builds the image of `service` and pushes it to the cluster's registry, or for a
/// k3d cluster without one imports it into the cluster. Every line the builder (and
/// k3d, and the push) prints goes to `on_line`, for the log hub. Returns the image
/// reference to deploy (`REGISTRY/REPO@sha256:...` after a push).
pub async fn build_image(
    env: &str,
    service: &str,
    build: &Build,
    cluster: Option<&Cluster>,
    vars: &BTreeMap<String, String>,
    scratch: &Scratch,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, KubeError> {
    match crate::docker::connect(vars).await {
        Ok(docker) => {
            engine_build(
                env, service, build, cluster, vars, &docker, scratch, on_line,
            )
            .await
        }
        Err(_) => cli_build(env, service, build, cluster, vars, scratch, on_line).await,
    }
}

/// The build on the engine's API; k3d imports the image from that engine.
#[allow(
    clippy::too_many_arguments,
    reason = "build_image's arguments passed on, plus the engine"
)]
async fn engine_build(
    env: &str,
    service: &str,
    build: &Build,
    cluster: Option<&Cluster>,
    vars: &BTreeMap<String, String>,
    docker: &bollard::Docker,
    scratch: &Scratch,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, KubeError> {
    use crate::docker::build as dbuild;
    let failed = |e: dbuild::BuildError| {
        KubeError::new(
            format!(
                "cannot build the image of `{service}` (Dockerfile {}): {e}",
                dockerfile(build).display()
            ),
            "the build output is in the service's logs (`devenv logs SERVICE`)",
        )
    };
    let input = build.clone();
    let plan = tokio::task::spawn_blocking(move || dbuild::plan(&input))
        .await
        .map_err(|e| KubeError::new(format!("reading the build context: {e}"), ""))?
        .map_err(failed)?;
    let image = dbuild::tag(env, service, &plan.hash);
    let hash = plan.hash.clone();
    if dbuild::exists(docker, &image).await {
        on_line(&format!(
            "image {image} is up to date (build context unchanged)"
        ));
    } else {
        on_line(&format!("building {image} on the engine"));
        let labels = std::collections::HashMap::from([(
            crate::docker::LABEL_ENV.to_owned(),
            env.to_owned(),
        )]);
        dbuild::build(docker, plan, build, &image, labels, on_line)
            .await
            .map_err(failed)?;
    }
    if let Some(registry) = cluster.and_then(|c| c.registry.as_ref()) {
        let tar = scratch_tarball(scratch, env, service, &hash)?;
        export(docker, &image, tar.path()).await?;
        return push_tarball(tar.path(), registry, env, service, &hash, vars, on_line).await;
    }
    if let Some(cluster) = cluster.filter(|c| c.provider == ClusterProvider::K3d) {
        k3d::import_images(
            k3d::name(cluster),
            std::slice::from_ref(&image),
            vars,
            on_line,
        )
        .await?;
    }
    Ok(image)
}

/// An empty private file made by us (0600, exclusively) that a builder overwrites;
/// removed when it drops, after the import or push or on error.
fn scratch_tarball(
    scratch: &Scratch,
    env: &str,
    service: &str,
    hash: &str,
) -> Result<crate::scratch::ScratchFile, KubeError> {
    scratch
        .create(&format!("image-{env}-{service}-{hash}"), "tar")
        .map(|(f, _)| f)
        .map_err(|e| {
            KubeError::new(
                format!(
                    "cannot create the image tarball in {}: {e}",
                    scratch.dir().display()
                ),
                "",
            )
        })
}

/// The engine's image as a tarball (`docker save`: an OCI layout since Docker 25).
async fn export(docker: &bollard::Docker, image: &str, to: &Path) -> Result<(), KubeError> {
    use futures::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let failed = |e: String| {
        KubeError::new(
            format!("cannot export the image {image} from the engine: {e}"),
            "",
        )
    };
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut stream = std::pin::pin!(docker.export_image(image));
    let copy = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| failed(e.to_string()))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
        file.flush().await.map_err(|e| failed(e.to_string()))
    };
    tokio::time::timeout(SAVE_DEADLINE, copy)
        .await
        .map_err(|_| failed(format!("not done after {}s", SAVE_DEADLINE.as_secs())))?
}

/// Pushes an OCI layout tarball as `<registry>/<env>-<service>:<tag>`; returns the
/// reference by digest.
async fn push_tarball(
    tarball: &Path,
    registry: &ImageRegistry,
    env: &str,
    service: &str,
    tag: &str,
    vars: &BTreeMap<String, String>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, KubeError> {
    let repository = registry.repository(env, service);
    match push::push(tarball, registry, &repository, tag, vars, on_line).await {
        Ok(pushed) => Ok(pushed.reference),
        Err(e) => {
            let kind = match e {
                PushError::Unreachable { .. } => super::KubeErrorKind::Unreachable,
                PushError::Denied { .. } => super::KubeErrorKind::Credentials,
                _ => super::KubeErrorKind::Other,
            };
            Err(KubeError::new(
                format!("cannot push the image of `{service}`: {e}"),
                e.hint(),
            )
            .with_kind(kind))
        }
    }
}

/// The CLI builder's image saved as an OCI layout (docker/nerdctl `save`, buildah
/// `push oci-archive:`).
fn oci_save_args(builder: Builder, tag: &str, tarball: &Path) -> Vec<String> {
    let tar = tarball.display().to_string();
    match builder {
        Builder::Docker | Builder::Nerdctl => vec!["save".into(), "-o".into(), tar, tag.into()],
        Builder::Buildah => vec![
            "push".into(),
            tag.into(),
            format!("oci-archive:{tar}:{tag}"),
        ],
    }
}

/// The build by a CLI on PATH, for machines without a reachable engine.
async fn cli_build(
    env: &str,
    service: &str,
    build: &Build,
    cluster: Option<&Cluster>,
    vars: &BTreeMap<String, String>,
    scratch: &Scratch,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, KubeError> {
    let input = build.clone();
    let hash = tokio::task::spawn_blocking(move || content_hash(&input))
        .await
        .map_err(|e| KubeError::new(format!("hashing the build context: {e}"), ""))?
        .map_err(|e| {
            KubeError::new(
                format!(
                    "cannot read the build context {}: {e}",
                    build.context.display()
                ),
                "check spec.services[].build.context",
            )
        })?;
    let image = tag(env, service, &hash);
    let registry = cluster.and_then(|c| c.registry.as_ref());
    let found = match (detect(vars).await, registry, &build.tarball) {
        (Ok(found), _, _) => found,
        (Err(_), Some(registry), Some(tarball)) => {
            on_line(&format!(
                "no image builder here: pushing build.tarball {}",
                tarball.display()
            ));
            return push_tarball(tarball, registry, env, service, &hash, vars, on_line).await;
        }
        (Err(mut e), Some(_), None) => {
            e.hint = Some(format!(
                "{}; or name an OCI image layout tarball to push in `build.tarball`",
                e.hint.unwrap_or_default()
            ));
            return Err(e);
        }
        (Err(e), _, _) => return Err(e),
    };
    run_builder(
        &found,
        &build_args(found.builder, &image, build),
        vars,
        on_line,
    )
    .await?;
    if let Some(registry) = registry {
        let tar = scratch_tarball(scratch, env, service, &hash)?;
        run_builder(
            &found,
            &oci_save_args(found.builder, &image, tar.path()),
            vars,
            on_line,
        )
        .await?;
        return push_tarball(tar.path(), registry, env, service, &hash, vars, on_line).await;
    }
    if let Some(cluster) = cluster.filter(|c| c.provider == ClusterProvider::K3d) {
        let name = k3d::name(cluster);
        if found.builder == Builder::Docker {
            k3d::import_images(name, std::slice::from_ref(&image), vars, on_line).await?;
        } else {
            let tar = scratch_tarball(scratch, env, service, &hash)?;
            if let Some(args) = save_args(found.builder, &image, tar.path()) {
                run_builder(&found, &args, vars, on_line).await?;
            }
            let images = [tar.path().display().to_string()];
            k3d::import_images(name, &images, vars, on_line).await?;
        }
    }
    Ok(image)
}

async fn run_builder(
    found: &Found,
    args: &[String],
    vars: &BTreeMap<String, String>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<(), KubeError> {
    let shown = format!("{} {}", found.builder.program(), args[0]);
    let out = tools::run(
        &found.program,
        args,
        vars,
        if args[0] == "push" || args[0] == "save" {
            SAVE_DEADLINE
        } else {
            BUILD_DEADLINE
        },
        on_line,
    )
    .await
    .map_err(|e| KubeError::new(format!("`{shown}` failed: {e}"), ""))?;
    if out.success() {
        Ok(())
    } else {
        Err(KubeError::new(
            format!("`{shown}` failed: {}", out.failure()),
            "the build output is in the service's logs (`devenv logs SERVICE`)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::tools::tests::{path_vars, script};

    fn build(context: &Path, dockerfile: Option<&Path>) -> Build {
        Build {
            context: context.to_path_buf(),
            dockerfile: dockerfile.map(Path::to_path_buf),
            args: Default::default(),
            target: None,
            tarball: None,
        }
    }

    #[test]
    fn build_commands() {
        let b = build(Path::new("/p/web"), None);
        let t = tag("shop", "web", "0123456789ab");
        assert_eq!(t, "devenv.local/shop-web:0123456789ab");
        assert_eq!(
            build_args(Builder::Docker, &t, &b).join(" "),
            "build -t devenv.local/shop-web:0123456789ab -f /p/web/Dockerfile /p/web"
        );
        let b = build(
            Path::new("/p/web"),
            Some(Path::new("/p/docker/web.Dockerfile")),
        );
        assert_eq!(
            build_args(Builder::Buildah, &t, &b).join(" "),
            "bud -t devenv.local/shop-web:0123456789ab -f /p/docker/web.Dockerfile /p/web"
        );
        assert_eq!(
            build_args(Builder::Nerdctl, &t, &b)[0..3].join(" "),
            "build -t devenv.local/shop-web:0123456789ab"
        );
        let mut b = build(Path::new("/p/web"), None);
        b.args.insert("MODE".into(), "dev".into());
        b.target = Some("runtime".into());
        assert_eq!(
            build_args(Builder::Docker, &t, &b)[5..].join(" "),
            "--build-arg MODE=dev --target runtime /p/web"
        );
    }

    #[test]
    fn save_commands_for_k3d_import() {
        let tar = Path::new("/tmp/x.tar");
        assert_eq!(save_args(Builder::Docker, "i:1", tar), None);
        assert_eq!(
            save_args(Builder::Buildah, "i:1", tar).unwrap().join(" "),
            "push i:1 docker-archive:/tmp/x.tar:i:1"
        );
        assert_eq!(
            save_args(Builder::Nerdctl, "i:1", tar).unwrap().join(" "),
            "save -o /tmp/x.tar i:1"
        );
    }

    #[test]
    fn save_commands_for_a_registry_push_write_oci_layouts() {
        let tar = Path::new("/tmp/x.tar");
        assert_eq!(
            oci_save_args(Builder::Buildah, "i:1", tar).join(" "),
            "push i:1 oci-archive:/tmp/x.tar:i:1"
        );
        for b in [Builder::Docker, Builder::Nerdctl] {
            assert_eq!(
                oci_save_args(b, "i:1", tar).join(" "),
                "save -o /tmp/x.tar i:1"
            );
        }
    }

    #[test]
    fn content_hash_follows_the_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.txt"), "a").unwrap();
        let b = build(dir.path(), None);
        let first = content_hash(&b).unwrap();
        assert_eq!(first.len(), HASH_LEN);
        assert_eq!(content_hash(&b).unwrap(), first, "stable");
        // .git does not count.
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "ref").unwrap();
        assert_eq!(content_hash(&b).unwrap(), first);
        std::fs::write(dir.path().join("src/a.txt"), "b").unwrap();
        let second = content_hash(&b).unwrap();
        assert_ne!(second, first, "content changed");
        std::fs::rename(dir.path().join("src/a.txt"), dir.path().join("src/b.txt")).unwrap();
        assert_ne!(content_hash(&b).unwrap(), second, "name changed");
    }

    #[tokio::test]
    async fn detect_prefers_docker_only_with_an_engine() {
        let dir = tempfile::tempdir().unwrap();
        let vars = path_vars(dir.path());
        let e = detect(&vars).await.unwrap_err();
        assert!(e.message.starts_with("no image builder found"), "{e}");
        assert!(e.to_string().contains("buildah"), "{e}");

        script(
            dir.path(),
            "docker",
            "echo 'Cannot connect to the Docker daemon' >&2; exit 1",
        );
        let e = detect(&vars).await.unwrap_err();
        assert!(
            e.message
                .ends_with("(docker is installed, but: Cannot connect to the Docker daemon)"),
            "{e}"
        );
        script(dir.path(), "nerdctl", "exit 0");
        assert_eq!(detect(&vars).await.unwrap().builder, Builder::Nerdctl);
        script(dir.path(), "buildah", "exit 0");
        assert_eq!(detect(&vars).await.unwrap().builder, Builder::Buildah);
        script(dir.path(), "docker", "echo 27.1.1");
        assert_eq!(detect(&vars).await.unwrap().builder, Builder::Docker);
    }

    /// `vars` with an engine address nothing answers at: the CLI builders' path.
    fn no_engine(mut vars: BTreeMap<String, String>) -> BTreeMap<String, String> {
        vars.insert(
            "DOCKER_HOST".into(),
            "unix:///nonexistent/devenv-test/docker.sock".into(),
        );
        vars
    }

    #[tokio::test]
    #[ignore = "needs a Docker engine: CI runs the ignored set as root, dockerd started by scripts/install-test-tools.sh"]
    async fn with_an_engine_its_api_builds_and_no_cli_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("web");
        std::fs::create_dir_all(&ctx).unwrap();
        // No base image to pull: `scratch` plus a file.
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\nCOPY page.txt /page.txt\n",
        )
        .unwrap();
        std::fs::write(
            ctx.join("page.txt"),
            format!("{:?}", std::time::SystemTime::now()),
        )
        .unwrap();
        // An empty PATH: no docker, buildah or nerdctl to run.
        let mut vars = BTreeMap::from([("PATH".to_owned(), String::new())]);
        if let Ok(h) = std::env::var("DOCKER_HOST") {
            vars.insert("DOCKER_HOST".into(), h);
        }
        let (_tmp, scratch) = scratch();
        let env = format!("kbuild{}", std::process::id());
        let mut lines = Vec::new();
        let image = build_image(
            &env,
            "web",
            &build(&ctx, None),
            None,
            &vars,
            &scratch,
            &mut |l| lines.push(l.to_owned()),
        )
        .await
        .expect("built on the engine");
        assert!(
            image.starts_with(&format!("devenv.local/{env}-web:")),
            "{image}"
        );
        assert!(lines.iter().any(|l| l.starts_with("Step 2/")), "{lines:?}");
        let docker = crate::docker::connect(&vars).await.unwrap();
        assert!(crate::docker::build::exists(&docker, &image).await);
        // Unchanged: not built again.
        lines.clear();
        let again = build_image(
            &env,
            "web",
            &build(&ctx, None),
            None,
            &vars,
            &scratch,
            &mut |l| lines.push(l.to_owned()),
        )
        .await
        .unwrap();
        assert_eq!(again, image);
        assert_eq!(
            lines,
            [format!(
                "image {image} is up to date (build context unchanged)"
            )]
        );
        let _ = docker
            .remove_image(
                &image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }

    #[tokio::test]
    async fn build_image_runs_the_builder_and_imports_into_k3d() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let ctx = dir.path().join("web");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
        let argv = dir.path().join("argv");
        // Fakes that record their arguments: this checks the commands devenv runs,
        // not that an image gets built.
        let record = format!("echo \"$0 $*\" >> {}", argv.display());
        script(
            &bin,
            "docker",
            &format!("case \"$1\" in info) echo 27.1.1 ;; *) {record}; echo step 1/1 ;; esac"),
        );
        script(
            &bin,
            "k3d",
            &format!("case \"$2\" in list) echo '[]' ;; *) {record} ;; esac"),
        );
        let vars = no_engine(path_vars(&bin));
        let cluster = Cluster {
            provider: ClusterProvider::K3d,
            name: Some("shop-local".into()),
            context: None,
            namespace: "devenv-shop".into(),
            k3d: Default::default(),
            shared: false,
            policy: Default::default(),
            snapshot_image: None,
            registry: None,
        };
        let b = build(&ctx, None);
        let mut lines = Vec::new();
        let (_tmp, scratch) = scratch();
        let image = build_image(
            "shop",
            "web",
            &b,
            Some(&cluster),
            &vars,
            &scratch,
            &mut |l| lines.push(l.to_owned()),
        )
        .await
        .unwrap();
        let hash = content_hash(&b).unwrap();
        assert_eq!(image, format!("devenv.local/shop-web:{hash}"));
        let recorded = std::fs::read_to_string(&argv).unwrap();
        let d = bin.display();
        assert_eq!(
            recorded,
            format!(
                "{d}/docker build -t {image} -f {c}/Dockerfile {c}\n\
                 {d}/k3d image import {image} -c shop-local\n",
                c = ctx.display()
            )
        );
        assert_eq!(lines, ["step 1/1"]);
    }

    fn scratch() -> (tempfile::TempDir, Scratch) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tmp");
        std::fs::create_dir(&dir).unwrap();
        let (s, _) = Scratch::open_and_sweep(dir).unwrap();
        (tmp, s)
    }

    #[tokio::test]
    async fn image_tarball_is_a_private_temp_file_removed_after_import() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let ctx = dir.path().join("web");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
        let argv = dir.path().join("argv");
        let record = format!("echo \"$0 $*\" >> {}", argv.display());
        // buildah writes the archive into the file we made (it must exist, empty).
        script(
            &bin,
            "buildah",
            &format!(
                "{record}; case \"$1\" in push) p=${{3#docker-archive:}}; p=${{p%%:*}}; \
                 [ -f \"$p\" ] && [ ! -s \"$p\" ] && echo \"empty file ready\" >> {a}; \
                 echo archive > \"$p\" ;; esac",
                a = argv.display()
            ),
        );
        script(
            &bin,
            "k3d",
            &format!(
                "case \"$2\" in list) echo '[]' ;; *) {record}; read l < \"$3\"; echo \"read $l\" >> {a} ;; esac",
                a = argv.display()
            ),
        );
        // No engine when the builder is picked (so buildah builds), one by the time
        // k3d's preflight asks.
        let up = dir.path().join("engine-up");
        script(
            &bin,
            "docker",
            &format!(
                "if [ -f {u} ]; then echo 27.1.1; else : > {u}; exit 1; fi",
                u = up.display()
            ),
        );
        let vars = no_engine(path_vars(&bin));
        let cluster = Cluster {
            provider: ClusterProvider::K3d,
            name: Some("shop-local".into()),
            context: None,
            namespace: "devenv-shop".into(),
            k3d: Default::default(),
            shared: false,
            policy: Default::default(),
            snapshot_image: None,
            registry: None,
        };
        let (_tmp, scratch) = scratch();
        let image = build_image(
            "shop",
            "web",
            &build(&ctx, None),
            Some(&cluster),
            &vars,
            &scratch,
            &mut |_| {},
        )
        .await
        .unwrap();
        let recorded = std::fs::read_to_string(&argv).unwrap();
        let lines: Vec<&str> = recorded.lines().collect();
        assert_eq!(lines.len(), 5, "{recorded}");
        let import = lines[3];
        let tar = import.rsplit(' ').nth(2).unwrap();
        assert!(
            std::path::Path::new(tar).parent() == Some(scratch.dir()),
            "the tarball should be in the scratch dir: {recorded}"
        );
        assert_eq!(
            lines[1],
            format!(
                "{}/buildah push {image} docker-archive:{tar}:{image}",
                bin.display()
            )
        );
        assert_eq!(lines[2], "empty file ready");
        assert_eq!(lines[4], "read archive");
        assert_eq!(std::fs::read_dir(scratch.dir()).unwrap().count(), 0);
    }
}
