//! k3d clusters (`spec.cluster.provider: k3d`): the `k3d` command lines devenv runs,
//! built from the config by pure functions, and running them with k3d's and Docker's
//! failures explained in one line.
//!
//! Every k3d command needs the `k3d` binary and a running Docker engine (k3d runs k3s
//! in containers); both are checked before running anything, so that the user hears
//! about the missing piece instead of k3d's own stack of wrapped errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::tools::{self, DockerProblem};
use super::KubeError;
use crate::config::Cluster;

/// Cluster name when `spec.cluster.name` is not set (its context is `k3d-devenv`).
pub const DEFAULT_NAME: &str = "devenv";

/// How to get k3d, for the "not installed" hint.
pub const INSTALL_HINT: &str =
    "install it from https://k3d.io, or `go install github.com/k3d-io/k3d/v5@latest`";

/// `create --wait` pulls the k3s image on first use.
const CREATE_DEADLINE: Duration = Duration::from_secs(15 * 60);
const DELETE_DEADLINE: Duration = Duration::from_secs(5 * 60);
const LIST_DEADLINE: Duration = Duration::from_secs(60);
const IMPORT_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// k3d limits cluster names (they become container and network names).
const MAX_NAME_LEN: usize = 32;

/// The k3d cluster name of a config.
pub fn name(cluster: &Cluster) -> &str {
    cluster.name.as_deref().unwrap_or(DEFAULT_NAME)
}

/// Checks what goes onto k3d's command line: a name k3d accepts, and no value that
/// k3d would read as a flag.
pub fn check(cluster: &Cluster) -> Result<(), String> {
    let n = name(cluster);
    let ok_chars = n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if n.is_empty() || n.len() > MAX_NAME_LEN || !ok_chars || n.starts_with('-') || n.ends_with('-')
    {
        return Err(format!(
            "spec.cluster.name `{n}` is not a valid k3d cluster name: use up to {MAX_NAME_LEN} letters, digits and `-`, not at either end"
        ));
    }
    if let Some(p) = cluster.k3d.ports.iter().find(|p| p.starts_with('-')) {
        return Err(format!(
            "spec.cluster.k3d.ports: `{p}` is not a port rule (`HOST:CONTAINER[@NODE]`)"
        ));
    }
    Ok(())
}

/// `k3d cluster create NAME --agents N [--port P]... --wait ...`: waits until the
/// cluster is up, and adds its context to the default kubeconfig without switching
/// the user's current context.
pub fn create_args(cluster: &Cluster) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "cluster".into(),
        "create".into(),
        name(cluster).into(),
        "--agents".into(),
        cluster.k3d.agents.to_string(),
    ];
    for port in &cluster.k3d.ports {
        args.push("--port".into());
        args.push(port.clone());
    }
    args.extend(
        [
            "--wait",
            "--kubeconfig-update-default",
            "--kubeconfig-switch-context=false",
        ]
        .map(String::from),
    );
    args
}

pub fn delete_args(name: &str) -> Vec<String> {
    ["cluster", "delete", name].map(String::from).to_vec()
}

pub fn list_args() -> Vec<String> {
    ["cluster", "list", "-o", "json"].map(String::from).to_vec()
}

/// `k3d image import IMAGE... -c NAME`: images (or image tarballs) from the host
/// into every node of the cluster.
pub fn import_args(name: &str, images: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec!["image".into(), "import".into()];
    args.extend(images.iter().cloned());
    args.push("-c".into());
    args.push(name.into());
    args
}

/// One cluster of `k3d cluster list -o json` (the fields devenv reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub name: String,
    #[serde(default)]
    pub servers_count: u32,
    #[serde(default)]
    pub servers_running: u32,
    #[serde(default)]
    pub agents_count: u32,
    #[serde(default)]
    pub agents_running: u32,
}

impl Listed {
    pub fn running(&self) -> bool {
        self.servers_running > 0
    }
}

/// Parses `k3d cluster list -o json` (k3d prints `[]`, or nothing, when there are none).
pub fn parse_list(stdout: &str) -> Result<Vec<Listed>, serde_json::Error> {
    if stdout.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(stdout)
}

pub fn not_installed() -> KubeError {
    KubeError::new("k3d is not installed: no `k3d` on PATH", INSTALL_HINT)
}

pub fn docker_needed(problem: &DockerProblem) -> KubeError {
    KubeError::new(
        format!("k3d needs a running Docker engine: {problem}"),
        tools::DOCKER_HINT,
    )
}

/// The k3d binary, once it and a Docker engine are there.
pub async fn preflight(vars: &BTreeMap<String, String>) -> Result<PathBuf, KubeError> {
    let k3d = tools::find_program("k3d", vars).ok_or_else(not_installed)?;
    tools::docker_engine(vars)
        .await
        .map_err(|p| docker_needed(&p))?;
    Ok(k3d)
}

/// What `create` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// k3d created it; what k3d printed.
    New(String),
    /// A k3d cluster of that name already existed; nothing was run.
    Existed,
}

/// Creates the cluster unless k3d already has one of that name.
pub async fn create(
    cluster: &Cluster,
    vars: &BTreeMap<String, String>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<Created, KubeError> {
    check(cluster).map_err(|m| KubeError::new(m, ""))?;
    let k3d = preflight(vars).await?;
    let name = name(cluster);
    if list_with(&k3d, vars).await?.iter().any(|c| c.name == name) {
        return Ok(Created::Existed);
    }
    run_k3d(&k3d, &create_args(cluster), vars, CREATE_DEADLINE, on_line)
        .await
        .map(Created::New)
}

pub async fn delete(
    name: &str,
    vars: &BTreeMap<String, String>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, KubeError> {
    let k3d = preflight(vars).await?;
    run_k3d(&k3d, &delete_args(name), vars, DELETE_DEADLINE, on_line).await
}

/// k3d's clusters (all of them, not only devenv's).
pub async fn list(vars: &BTreeMap<String, String>) -> Result<Vec<Listed>, KubeError> {
    let k3d = preflight(vars).await?;
    list_with(&k3d, vars).await
}

async fn list_with(
    k3d: &std::path::Path,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<Listed>, KubeError> {
    let out = run_k3d_raw(k3d, &list_args(), vars, LIST_DEADLINE, &mut |_| {}).await?;
    parse_list(&out.stdout).map_err(|e| {
        KubeError::new(
            format!("cannot read the output of `k3d cluster list -o json`: {e}"),
            "check the k3d version (devenv expects k3d v5)",
        )
    })
}

/// Imports images (refs known to Docker, or image tarballs) into the cluster.
pub async fn import_images(
    name: &str,
    images: &[String],
    vars: &BTreeMap<String, String>,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, KubeError> {
    let k3d = preflight(vars).await?;
    run_k3d(
        &k3d,
        &import_args(name, images),
        vars,
        IMPORT_DEADLINE,
        on_line,
    )
    .await
}

/// Runs k3d; what it printed on success, its failure in one line otherwise (the
/// whole output goes to the daemon's log).
async fn run_k3d(
    k3d: &std::path::Path,
    args: &[String],
    vars: &BTreeMap<String, String>,
    deadline: Duration,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, KubeError> {
    run_k3d_raw(k3d, args, vars, deadline, on_line)
        .await
        .map(|out| out.combined)
}

async fn run_k3d_raw(
    k3d: &std::path::Path,
    args: &[String],
    vars: &BTreeMap<String, String>,
    deadline: Duration,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<tools::ToolOutput, KubeError> {
    let shown = short_command(args);
    let out = tools::run(k3d, args, vars, deadline, on_line)
        .await
        .map_err(|e| KubeError::new(format!("`{shown}` failed: {e}"), LOG_HINT))?;
    if out.success() {
        return Ok(out);
    }
    tracing::warn!(command = %shown, output = %out.combined, "k3d failed");
    Err(KubeError::new(
        format!("`{shown}` failed: {}", out.failure()),
        LOG_HINT,
    ))
}

const LOG_HINT: &str = "k3d's full output is in the daemon log: `devenv daemon logs`";

/// `k3d cluster create NAME` — the command without its flags, for messages.
fn short_command(args: &[String]) -> String {
    let words: Vec<&str> = std::iter::once("k3d")
        .chain(
            args.iter()
                .take_while(|a| !a.starts_with('-'))
                .map(String::as_str),
        )
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClusterProvider, K3d};
    use crate::kube::tools::tests::{path_vars, script};

    fn cluster(name: Option<&str>, agents: u32, ports: &[&str]) -> Cluster {
        Cluster {
            provider: ClusterProvider::K3d,
            name: name.map(String::from),
            context: None,
            namespace: "devenv-shop".into(),
            k3d: K3d {
                agents,
                ports: ports.iter().map(|p| p.to_string()).collect(),
            },
            shared: false,
            policy: Default::default(),
            snapshot_image: None,
            registry: None,
        }
    }

    #[test]
    fn create_command_from_the_config() {
        let c = cluster(
            Some("shop-local"),
            2,
            &["8080:80@loadbalancer", "8443:443@loadbalancer"],
        );
        assert_eq!(
            create_args(&c).join(" "),
            "cluster create shop-local --agents 2 --port 8080:80@loadbalancer \
             --port 8443:443@loadbalancer --wait --kubeconfig-update-default \
             --kubeconfig-switch-context=false"
        );
        // Defaults: the name `devenv` (context k3d-devenv), no agents, no ports.
        let c = cluster(None, 0, &[]);
        assert_eq!(
            create_args(&c).join(" "),
            "cluster create devenv --agents 0 --wait --kubeconfig-update-default \
             --kubeconfig-switch-context=false"
        );
        assert_eq!(crate::kube::context_name(&c).as_deref(), Some("k3d-devenv"));
    }

    #[test]
    fn other_commands() {
        assert_eq!(delete_args("shop").join(" "), "cluster delete shop");
        assert_eq!(list_args().join(" "), "cluster list -o json");
        assert_eq!(
            import_args("shop", &["a:1".into(), "b:2".into()]).join(" "),
            "image import a:1 b:2 -c shop"
        );
    }

    #[test]
    fn names_and_ports_that_k3d_would_misread_are_refused() {
        assert!(check(&cluster(Some("shop-local"), 0, &["8080:80"])).is_ok());
        for bad in ["-x", "a_b", "x-", "", &"a".repeat(33)] {
            assert!(check(&cluster(Some(bad), 0, &[])).is_err(), "{bad:?}");
        }
        assert!(check(&cluster(None, 0, &["--help:1"])).is_err());
    }

    #[test]
    fn parses_k3d_list_json() {
        let json = r#"[{"name":"shop","network":{"name":"k3d-shop"},"token":"t",
            "nodes":[{"name":"k3d-shop-server-0","role":"server"}],
            "serversRunning":1,"serversCount":1,"agentsRunning":0,"agentsCount":2,
            "hasLoadbalancer":true}]"#;
        let listed = parse_list(json).unwrap();
        assert_eq!(
            listed,
            vec![Listed {
                name: "shop".into(),
                servers_count: 1,
                servers_running: 1,
                agents_count: 2,
                agents_running: 0,
            }]
        );
        assert!(listed[0].running());
        assert!(parse_list("[]").unwrap().is_empty());
        assert!(parse_list("\n").unwrap().is_empty());
        assert!(parse_list("NAME SERVERS").is_err());
    }

    #[test]
    fn short_command_drops_flags() {
        let c = cluster(Some("shop"), 1, &["1:2"]);
        assert_eq!(short_command(&create_args(&c)), "k3d cluster create shop");
    }

    #[tokio::test]
    async fn missing_k3d_and_missing_docker_are_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let vars = path_vars(dir.path());
        let e = preflight(&vars).await.unwrap_err();
        assert!(e.message.starts_with("k3d is not installed"), "{e}");
        assert!(e.to_string().contains("https://k3d.io"), "{e}");
        assert!(!e.to_string().contains('\n'));

        script(dir.path(), "k3d", "exit 0");
        let e = preflight(&vars).await.unwrap_err();
        assert_eq!(
            e.message,
            "k3d needs a running Docker engine: `docker` is not on PATH"
        );
    }

    #[tokio::test]
    async fn k3d_failures_are_its_fatal_line() {
        let dir = tempfile::tempdir().unwrap();
        let vars = path_vars(dir.path());
        script(dir.path(), "docker", "echo 27.1.1");
        script(
            dir.path(),
            "k3d",
            r#"case "$2" in
  list) echo '[{"name":"other","serversRunning":1}]' ;;
  create) echo 'INFO[0000] Prep: Network' >&2
          echo 'FATA[0001] Failed to create cluster: port 8080 is already allocated' >&2
          exit 1 ;;
esac"#,
        );
        let c = cluster(Some("shop"), 0, &[]);
        let mut lines = Vec::new();
        let e = create(&c, &vars, &mut |l| lines.push(l.to_owned()))
            .await
            .unwrap_err();
        assert_eq!(
            e.message,
            "`k3d cluster create shop` failed: Failed to create cluster: port 8080 is already allocated"
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        // An existing cluster of that name: nothing to run.
        let c = cluster(Some("other"), 0, &[]);
        assert_eq!(
            create(&c, &vars, &mut |_| {}).await.unwrap(),
            Created::Existed
        );
    }
}
