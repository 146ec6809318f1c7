//! `chart` services through the helm CLI: `helm upgrade --install` with the service's
//! values into the environment's namespace; `helm uninstall` on `down`.
//!
//! The values reach helm over its stdin (`--values -`), never through a file: they
//! may hold secrets (`${tf.SVC.OUT}` of a sensitive terraform output, `${VAR}`s), and
//! a pipe leaves nothing on disk even when the daemon is killed mid-install (a private
//! temp file would sit there until the next start's sweep), nor in `/proc/PID/cmdline`
//! where `--set` would put them for every user of the machine to read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use super::KubeError;

/// The helm binary on the client's PATH (as every cluster tool is found,
/// [`super::tools::find_program`]), or an error saying how to get it.
pub fn binary(vars: &BTreeMap<String, String>) -> Result<PathBuf, KubeError> {
    super::tools::find_program("helm", vars).ok_or_else(|| {
        KubeError::new(
            "helm is not installed (needed for `chart` services)",
            "install helm 3 (https://helm.sh/docs/intro/install/, or `go install helm.sh/helm/v3/cmd/helm@latest`) and make sure it is on PATH",
        )
    })
}

/// The release name of a chart service: the service name (unique per namespace).
pub fn release(service: &str) -> String {
    service.to_owned()
}

/// Arguments of `helm upgrade --install` (pure, for tests); with `values`, helm reads
/// them from its stdin ([`run`]'s `input`).
pub fn install_args(
    release: &str,
    chart: &str,
    namespace: &str,
    context: Option<&str>,
    values: bool,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "upgrade".into(),
        "--install".into(),
        release.into(),
        chart.into(),
        "--namespace".into(),
        namespace.into(),
        "--labels".into(),
        "app.kubernetes.io/managed-by-devenv=true".into(),
    ];
    if let Some(ctx) = context {
        args.push("--kube-context".into());
        args.push(ctx.into());
    }
    if values {
        args.push("--values".into());
        args.push("-".into());
    }
    args
}

/// Arguments of `helm get manifest`: the objects a release installed (pure, for tests).
pub fn manifest_args(release: &str, namespace: &str, context: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "get".into(),
        "manifest".into(),
        release.into(),
        "--namespace".into(),
        namespace.into(),
    ];
    if let Some(ctx) = context {
        args.push("--kube-context".into());
        args.push(ctx.into());
    }
    args
}

/// Arguments of `helm uninstall` (pure, for tests).
pub fn uninstall_args(release: &str, namespace: &str, context: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "uninstall".into(),
        release.into(),
        "--namespace".into(),
        namespace.into(),
        "--ignore-not-found".into(),
        "--wait".into(),
    ];
    if let Some(ctx) = context {
        args.push("--kube-context".into());
        args.push(ctx.into());
    }
    args
}

/// Whether helm's storage (Secrets, or ConfigMaps with `HELM_DRIVER=configmap`) holds
/// any revision of `release` in `kenv`'s namespace. Lets `down` without helm go on when
/// no release was ever installed (e.g. `up` failed because helm was missing).
pub async fn has_release(kenv: &super::ClusterConn, release: &str) -> Result<bool, KubeError> {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::{Api, ListParams};
    let lp = ListParams::default()
        .labels(&format!("owner=helm,name={release}"))
        .limit(1);
    let explain = |e: kube::Error| {
        super::error::explain_in(&e, &kenv.context, &format!("helm release {release}"))
    };
    let secrets: Api<Secret> = Api::namespaced(kenv.client.clone(), &kenv.namespace);
    if !secrets
        .list_metadata(&lp)
        .await
        .map_err(explain)?
        .items
        .is_empty()
    {
        return Ok(true);
    }
    let maps: Api<ConfigMap> = Api::namespaced(kenv.client.clone(), &kenv.namespace);
    Ok(!maps
        .list_metadata(&lp)
        .await
        .map_err(explain)?
        .items
        .is_empty())
}

/// Runs helm with `input` on its stdin (else none); on failure returns its last
/// meaningful stderr line.
pub async fn run(
    bin: &Path,
    args: &[String],
    input: Option<&[u8]>,
    vars: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<String, KubeError> {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(if input.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for key in [
        "KUBECONFIG",
        "HOME",
        "PATH",
        "HELM_CACHE_HOME",
        "HELM_CONFIG_HOME",
        "HELM_DATA_HOME",
    ] {
        if let Some(v) = vars.get(key) {
            cmd.env(key, v);
        }
    }
    let cannot =
        |e: std::io::Error| KubeError::new(format!("cannot run {}: {e}", bin.display()), "");
    let mut child = cmd.spawn().map_err(cannot)?;
    // Written while helm's output is read (wait_with_output below), so neither side
    // waits on a full pipe; dropped at the end, which is helm's end of input.
    let stdin = child.stdin.take();
    let feed = async move {
        if let (Some(data), Some(mut stdin)) = (input, stdin) {
            // helm that exits early (a bad flag) closes the pipe: its own error says why.
            let _ = stdin.write_all(data).await;
        }
    };
    let (out, ()) = tokio::join!(child.wait_with_output(), feed);
    let out = out.map_err(cannot)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("helm failed")
        .trim()
        .trim_start_matches("Error: ")
        .to_owned();
    Err(KubeError::new(
        format!(
            "helm {}: {line}",
            args.first().map(String::as_str).unwrap_or("")
        ),
        "",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_command() {
        let args = install_args(
            "monitoring",
            "./charts/monitoring",
            "devenv-shop",
            Some("kind-dev"),
            true,
        );
        assert_eq!(
            args.join(" "),
            "upgrade --install monitoring ./charts/monitoring --namespace devenv-shop --labels app.kubernetes.io/managed-by-devenv=true --kube-context kind-dev --values -"
        );
    }

    #[test]
    fn manifest_and_uninstall_commands() {
        assert_eq!(
            manifest_args("monitoring", "devenv-shop", Some("kind-dev")).join(" "),
            "get manifest monitoring --namespace devenv-shop --kube-context kind-dev"
        );
        assert_eq!(
            uninstall_args("monitoring", "devenv-shop", None).join(" "),
            "uninstall monitoring --namespace devenv-shop --ignore-not-found --wait"
        );
    }

    #[test]
    fn missing_helm_says_so() {
        let vars = BTreeMap::from([("PATH".to_owned(), "/nonexistent".to_owned())]);
        let e = binary(&vars).unwrap_err();
        assert!(e.message.starts_with("helm is not installed"), "{e}");
        assert!(e.hint.unwrap().contains("helm.sh"));
    }

    /// The values reach the program on its stdin, written while its output is read: a
    /// program echoing 1 MiB back (more than a pipe holds) neither blocks nor loses any.
    #[tokio::test]
    async fn values_go_over_stdin_while_output_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = tmp.path().join("helm");
        std::fs::write(
            &fake,
            "#!/bin/sh\n[ \"$*\" = \"upgrade --values -\" ] || exit 9\nexec cat\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let values: Vec<u8> = (0..1 << 20).map(|i| b'a' + (i % 26) as u8).collect();
        let args = vec!["upgrade".to_owned(), "--values".to_owned(), "-".to_owned()];
        let out = run(&fake, &args, Some(&values), &BTreeMap::new(), tmp.path())
            .await
            .unwrap();
        assert_eq!(out.as_bytes(), values.as_slice());
        // No input: stdin is empty, not the daemon's.
        let out = run(&fake, &args, None, &BTreeMap::new(), tmp.path())
            .await
            .unwrap();
        assert!(out.is_empty(), "{out}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "nothing written beside the program"
        );
    }
}
