//! `chart` services through the helm CLI: `helm upgrade --install` with the service's
//! values into the environment's namespace; `helm uninstall` on `down`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// How the temp file of a chart service's values is named (in the scratch dir under
/// the data dir, see [`crate::scratch`]): one path component, whatever the
/// environment id (an absolute path) holds.
pub fn values_file_prefix(env_id: &str, service: &str) -> String {
    format!("helm-values-{}-{service}", crate::state::env_key(env_id))
}

/// Arguments of `helm upgrade --install` (pure, for tests).
pub fn install_args(
    release: &str,
    chart: &str,
    namespace: &str,
    context: Option<&str>,
    values_file: Option<&Path>,
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
    if let Some(f) = values_file {
        args.push("--values".into());
        args.push(f.display().to_string());
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

/// Runs helm; on failure returns its last meaningful stderr line.
pub async fn run(
    bin: &Path,
    args: &[String],
    vars: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<String, KubeError> {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd).kill_on_drop(true);
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
    let out = cmd
        .output()
        .await
        .map_err(|e| KubeError::new(format!("cannot run {}: {e}", bin.display()), ""))?;
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
            Some(Path::new("/tmp/v.json")),
        );
        assert_eq!(
            args.join(" "),
            "upgrade --install monitoring ./charts/monitoring --namespace devenv-shop --labels app.kubernetes.io/managed-by-devenv=true --kube-context kind-dev --values /tmp/v.json"
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
    fn values_file_is_under_the_data_dir_not_beside_the_project() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data/tmp");
        std::fs::create_dir_all(&dir).unwrap();
        let (scratch, _) = crate::scratch::Scratch::open_and_sweep(dir.clone()).unwrap();
        let project = tmp.path().join("proj");
        let id = format!("{}#", project.display());
        let prefix = values_file_prefix(&id, "monitoring");
        assert!(!prefix.contains('/'), "{prefix}");
        let file = scratch.write(&prefix, "json", b"{}").unwrap();
        assert_eq!(file.path().parent(), Some(dir.as_path()));
        assert!(
            file.path()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&prefix),
            "{}",
            file.path().display()
        );
        // Nothing beside the project (where joining the id used to put it).
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_helm_says_so() {
        let vars = BTreeMap::from([("PATH".to_owned(), "/nonexistent".to_owned())]);
        let e = binary(&vars).unwrap_err();
        assert!(e.message.starts_with("helm is not installed"), "{e}");
        assert!(e.hint.unwrap().contains("helm.sh"));
    }
}
