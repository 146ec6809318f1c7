//! `spec.cluster.image.registry` against the real test cluster (tests/cluster) and a
//! real registry: the CNCF distribution registry (built from its Go module by
//! scripts/install-test-tools.sh), run by the test as a host process on 127.0.0.1.
//! A `build:` service is pushed there (no Docker engine is needed: without a builder
//! the `build.tarball` the config names is pushed), the Deployment runs it by digest
//! (`127.0.0.1:PORT/...@sha256:...`, the digest the registry serves), the cluster's
//! containerd pulls it from the registry (plain HTTP on loopback) and the pod
//! answers; an `up` with nothing changed pushes nothing (the registry's access log
//! sees no upload).
//!
//! Needs KUBECONFIG pointing at the test cluster; run with `--ignored`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use devenv_e2e::kube::{env_for, kc};
use devenv_e2e::{free_ports, http_get, wait_until};

/// The registry release scripts/install-test-tools.sh builds (keep the two in step).
const REGISTRY_VERSION: &str = "v3.1.2";

/// The cached registry binary (`DEVENV_REGISTRY_BIN` overrides).
fn registry_binary() -> PathBuf {
    if let Ok(p) = std::env::var("DEVENV_REGISTRY_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").expect("HOME");
    let p = PathBuf::from(home).join(format!(
        ".cache/devenv-tools/registry-{REGISTRY_VERSION}/registry"
    ));
    assert!(
        p.exists(),
        "the registry is not built: {} is missing; run `bash scripts/install-test-tools.sh` (it builds the distribution registry {REGISTRY_VERSION} from its Go module), or set DEVENV_REGISTRY_BIN",
        p.display()
    );
    p
}

/// `registry serve` on 127.0.0.1:`port`, storage in a temp dir; killed (and reaped)
/// when dropped.
struct Registry {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Registry {
    fn start(port: u16, dir: &Path) -> Self {
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog: {{ disabled: false }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let log = dir.join("registry.log");
        let out = std::fs::File::create(&log).expect("create the registry's log");
        let err = out.try_clone().unwrap();
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the registry");
        let r = Self { child, log, port };
        assert!(
            wait_until(Duration::from_secs(30), || http_get(port, "/v2/")
                .is_some_and(|r| r.status == 200)),
            "the registry did not answer on 127.0.0.1:{port}: {}",
            r.log()
        );
        r
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Requests that upload something: blob uploads and manifest puts.
    fn uploads(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"POST /v2/") || l.contains("\"PUT /v2/"))
            .count()
    }

    /// `HEAD /v2/REPO/manifests/REF` with the OCI media types: its digest header.
    fn manifest_digest(&self, repo: &str, reference: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "HEAD /v2/{repo}/manifests/{reference} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut head = String::new();
        s.read_to_string(&mut head).ok()?;
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_owned())
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Writes `blob` into the layout's blobs; returns its `sha256:` digest and size.
fn put_blob(layout: &Path, blob: &Path) -> (String, u64) {
    let hex = sha256_file(blob);
    let size = std::fs::metadata(blob).unwrap().len();
    std::fs::rename(blob, layout.join("blobs/sha256").join(&hex)).unwrap();
    (format!("sha256:{hex}"), size)
}

fn tar(args: &[&str]) {
    let st = Command::new("tar").args(args).status().expect("run tar");
    assert!(st.success(), "tar {args:?}");
}

const CMD: &str = r#"["/bin/busybox","httpd","-f","-p","8080","-h","/www"]"#;

/// The web image's files under `ctx/rootfs` (the host's static busybox and a page
/// with `token`), a Dockerfile that builds them (for machines with a builder), and
/// the same image as an OCI layout tarball at `tarball`; returns its manifest digest.
fn web_image(ctx: &Path, tarball: &Path, token: &str) -> String {
    let rootfs = ctx.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("www")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox (busybox-static, which tests/cluster/up.sh installs)");
    std::fs::write(rootfs.join("www/index.html"), format!("{token}\n")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nCOPY rootfs/ /\nCMD {CMD}\n"),
    )
    .unwrap();

    let work = ctx.parent().unwrap().join("oci");
    let layout = work.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer = work.join("layer.tar");
    tar(&[
        "--create",
        "--file",
        &layer.display().to_string(),
        "--directory",
        &rootfs.display().to_string(),
        "--sort=name",
        "--mtime=@0",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        ".",
    ]);
    let (layer_digest, layer_size) = put_blob(&layout, &layer);
    let config = work.join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":{CMD},"WorkingDir":"/"}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
        ),
    )
    .unwrap();
    let (config_digest, config_size) = put_blob(&layout, &config);
    let manifest = work.join("manifest.json");
    std::fs::write(
        &manifest,
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{layer_size}}}]}}"#
        ),
    )
    .unwrap();
    let (manifest_digest, manifest_size) = put_blob(&layout, &manifest);
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{manifest_size},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    tar(&[
        "--create",
        "--file",
        &tarball.display().to_string(),
        "--directory",
        &layout.display().to_string(),
        "oci-layout",
        "index.json",
        "blobs",
    ]);
    std::fs::remove_dir_all(&work).unwrap();
    manifest_digest
}

fn config(env: &str, port: u16, forward: u16) -> String {
    format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster:
    provider: kubeconfig
    image: {{ registry: "127.0.0.1:{port}/e2e" }}
  services:
    - name: web
      build: {{ context: ./web, tarball: ./web.oci.tar }}
      ports: [8080]
      forward: ["{forward}:8080"]
"#
    )
}

fn image_of_deployment(ns: &str) -> String {
    kc(&[
        "get",
        "deployment",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

fn answers(port: u16, token: &str) -> bool {
    wait_until(Duration::from_secs(60), || {
        http_get(port, "/").is_some_and(|r| r.status == 200 && r.body.contains(token))
    })
}

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it) and the registry binary (scripts/install-test-tools.sh)"]
fn k8s_build_pushed_to_a_registry_runs_by_digest() {
    let (mut t, env) = env_for("registry");
    let ns = format!("devenv-{env}");
    let ports = free_ports(2);
    let (port, forward) = (ports[0], ports[1]);
    let registry = Registry::start(port, t.root());
    // No builder: whatever the machine has on PATH or as an engine, the tarball path
    // is what this test is about (a builder's image would have another digest).
    t.set_var("PATH", "/usr/bin:/bin");
    t.set_var("DOCKER_HOST", "unix:///nonexistent/devenv-test/docker.sock");
    let token = format!("pushed-{}", std::process::id());
    let digest = web_image(
        &t.project.join("web"),
        &t.project.join("web.oci.tar"),
        &token,
    );
    t.write_config(&config(&env, port, forward));

    t.devenv_ok(&["up"]);
    let repo = format!("e2e/{env}-web");
    let image = image_of_deployment(&ns);
    assert_eq!(image, format!("127.0.0.1:{port}/{repo}@{digest}"));
    assert_eq!(
        registry.manifest_digest(&repo, &digest).as_deref(),
        Some(digest.as_str()),
        "the registry serves the manifest the Deployment names; its log:\n{}",
        registry.log()
    );
    let tags = http_get(port, &format!("/v2/{repo}/tags/list")).expect("tags/list");
    let tag = tags
        .body
        .split("\"tags\":[\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("one tag in {}", tags.body))
        .to_owned();
    assert_eq!(
        registry.manifest_digest(&repo, &tag).as_deref(),
        Some(digest.as_str())
    );
    assert!(
        answers(forward, &token),
        "the pod running the pushed image does not answer through the forward; status:\n{}",
        t.devenv(&["status"]).stdout
    );
    let logs = t.devenv_ok(&["logs", "web"]).stdout;
    assert!(
        logs.contains("no image builder here: pushing build.tarball"),
        "{logs}"
    );
    assert!(logs.contains(": pushed "), "per-blob progress: {logs}");
    assert!(
        logs.contains(&format!(
            "pushed 127.0.0.1:{port}/{repo}@{digest} (2 blob(s)"
        )),
        "{logs}"
    );
    let uploads = registry.uploads();
    assert!(
        uploads >= 3,
        "two blobs and a manifest uploaded: {}",
        registry.log()
    );

    // Nothing changed: nothing is uploaded, whether `up` keeps the running service
    // or deploys it again after a `down`.
    t.devenv_ok(&["up"]);
    t.devenv_ok(&["down"]);
    t.devenv_ok(&["up"]);
    assert_eq!(registry.uploads(), uploads, "{}", registry.log());
    let logs = t.devenv_ok(&["logs", "web"]).stdout;
    assert!(
        logs.contains(&format!(
            "image 127.0.0.1:{port}/{repo}@{digest} is in the registry already: nothing to push"
        )),
        "{logs}"
    );
    assert_eq!(image_of_deployment(&ns), image);
    assert!(answers(forward, &token), "the redeployed pod answers");
    t.devenv_ok(&["down"]);
}
