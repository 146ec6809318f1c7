//! `spec.workspaces` and `spec.cluster.shared`: defaults filled in, mistakes located.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

const HEAD: &str = "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\n";

fn load_with(spec: &str, user: Option<&str>) -> Result<Loaded, ConfigErrors> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".devenv")).expect("mkdir");
    std::fs::write(
        dir.path().join(".devenv/config.yml"),
        format!("{HEAD}spec:\n{spec}"),
    )
    .expect("write");
    let mut vars = BTreeMap::new();
    if let Some(u) = user {
        vars.insert("USER".to_owned(), u.to_owned());
    }
    load(&LoadRequest {
        start_dir: dir.path().to_path_buf(),
        vars,
        ..LoadRequest::default()
    })
}

const CLUSTER: &str = "  cluster: { provider: kubeconfig }\n";

fn errors(spec: &str) -> Vec<ConfigError> {
    match load_with(spec, Some("ann")) {
        Ok(_) => panic!("expected errors"),
        Err(ConfigErrors(e)) => e,
    }
}

#[test]
fn idle_timeout_none_means_never_stopped_for_idleness() {
    let spec = format!(
        "{CLUSTER}  workspaces:\n    - name: dev\n      image: busybox\n      idleTimeout: none\n"
    );
    let env = load_with(&spec, Some("ann")).unwrap().environment;
    assert_eq!(env.workspaces[0].idle_timeout, None);
}

#[test]
fn a_workspace_gets_three_volumes_and_its_owner() {
    let spec = format!(
        "{CLUSTER}  secrets: [{{ name: creds, data: {{ TOKEN: x }} }}]\n  workspaces:\n    - name: dev\n      image: busybox\n      idleTimeout: 2h\n      secrets: [creds]\n      env: {{ EDITOR: vi }}\n      ports: [8080]\n      init: [\"echo hi\"]\n      volumes: [{{ name: workspace, size: 16Mi, storageClass: local-path }}, {{ name: cache, mountPath: /cache }}]\n"
    );
    let env = load_with(&spec, Some("Ann")).unwrap().environment;
    let ws = &env.workspaces[0];
    assert_eq!(ws.owner, "ann");
    assert_eq!(ws.object_name(), "ws-dev-ann");
    assert_eq!(ws.idle_timeout, Some(Duration::from_secs(7200)));
    assert!(ws.read_only_root_filesystem);
    let vols: Vec<(&str, &str, &str, Option<&str>)> = ws
        .volumes
        .iter()
        .map(|v| {
            (
                v.name.as_str(),
                v.mount_path.as_str(),
                v.size.as_str(),
                v.storage_class.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        vols,
        [
            ("workspace", "/workspace", "16Mi", Some("local-path")),
            ("history", "/home/dev/.history", "1Gi", None),
            ("config", "/home/dev/.config", "1Gi", None),
            ("cache", "/cache", "1Gi", None),
        ]
    );
}

#[test]
fn mistakes_in_a_workspace_are_located() {
    let e = errors(&format!(
        "{CLUSTER}  workspaces:\n    - name: dev\n      image: busybox\n      idleTimeout: soon\n      secrets: [nope]\n      volumes: [{{ name: workspace, size: big }}]\n"
    ));
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "spec.workspaces[0].idleTimeout",
            "spec.workspaces[0].secrets[0]",
            "spec.workspaces[0].volumes[0].size"
        ],
        "{e:#?}"
    );
    assert!(e.iter().all(|e| e.line > 0));
    let e = errors(&format!(
        "{CLUSTER}  workspaces:\n    - name: dev\n      imgae: busybox\n"
    ));
    assert_eq!(e[0].key, "spec.workspaces[0].imgae");
    assert!(
        e[0].hint.as_deref().unwrap_or("").contains("image"),
        "{e:#?}"
    );
}

#[test]
fn workspaces_need_a_cluster_and_an_image() {
    let e = errors("  workspaces:\n    - name: dev\n");
    let messages: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("no `spec.cluster`")),
        "{e:#?}"
    );
    assert!(messages.iter().any(|m| m.contains("no `image`")), "{e:#?}");
}

#[test]
fn a_shared_cluster_gives_each_user_a_namespace() {
    let spec = "  cluster: { provider: kubeconfig, shared: true }\n";
    let ns = |user| {
        load_with(spec, Some(user))
            .unwrap()
            .environment
            .cluster
            .unwrap()
            .namespace
    };
    assert_eq!(ns("ann"), "devenv-ann-shop");
    assert_eq!(ns("bob"), "devenv-bob-shop");
    let plain = load_with(CLUSTER, Some("ann"))
        .unwrap()
        .environment
        .cluster
        .unwrap();
    assert_eq!(plain.namespace, "devenv-shop");
    let Err(ConfigErrors(e)) = load_with(spec, None) else {
        panic!("a shared cluster needs a user")
    };
    assert_eq!(e[0].key, "spec.cluster.shared");
}

#[test]
fn a_namespace_quota_and_limit_range_are_checked_and_located() {
    let spec = "  cluster:\n    provider: kubeconfig\n    quota: { pods: 10, requests.memory: 2Gi }\n    limitRange: { max: { memory: 1Gi }, defaultRequest: { cpu: 100m } }\n";
    let policy = load_with(spec, Some("ann"))
        .unwrap()
        .environment
        .cluster
        .unwrap()
        .policy;
    assert_eq!(
        policy.quota,
        BTreeMap::from([
            ("pods".to_owned(), "10".to_owned()),
            ("requests.memory".to_owned(), "2Gi".to_owned())
        ])
    );
    assert_eq!(policy.limit_range.max["memory"], "1Gi");
    assert_eq!(policy.limit_range.default_request["cpu"], "100m");
    assert!(policy.limit_range.default.is_empty());

    let e = errors("  cluster:\n    provider: kubeconfig\n    quota: { pods: lots, Pods: 1 }\n");
    let shown: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert!(
        shown.iter().any(|m| m.contains(":8:20:")
            && m.contains("spec.cluster.quota.pods: `lots` is not a quantity")),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|m| m.contains("`Pods` is not a resource name")),
        "{shown:#?}"
    );
    let e =
        errors("  cluster:\n    provider: kubeconfig\n    limitRange: { maxx: { memory: 1Gi } }\n");
    let shown: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert!(
        shown
            .iter()
            .any(|m| m.contains("maxx") && m.contains("did you mean `max`")),
        "{shown:#?}"
    );
}

/// Loads `spec` in a project that has a `src` directory.
fn load_in_project(spec: &str) -> (tempfile::TempDir, Result<Loaded, ConfigErrors>) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".devenv")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("src")).expect("mkdir src");
    std::fs::write(
        dir.path().join(".devenv/config.yml"),
        format!("{HEAD}spec:\n{spec}"),
    )
    .expect("write");
    let loaded = load(&LoadRequest {
        start_dir: dir.path().to_path_buf(),
        vars: BTreeMap::from([("USER".to_owned(), "ann".to_owned())]),
        ..LoadRequest::default()
    });
    (dir, loaded)
}

#[test]
fn a_workspace_syncs_into_its_volumes() {
    let spec = format!(
        "{CLUSTER}  workspaces:\n    - name: dev\n      image: busybox\n      sync: [{{ from: ./src, to: /workspace/src, exclude: [\"*.o\"] }}]\n"
    );
    let (dir, loaded) = load_in_project(&spec);
    let ws = &loaded.unwrap().environment.workspaces[0];
    assert_eq!(ws.sync.len(), 1);
    assert_eq!(ws.sync[0].from, dir.path().join("src"));
    assert_eq!(ws.sync[0].to, "/workspace/src");
    assert_eq!(ws.sync[0].exclude, ["*.o"]);
}

#[test]
fn a_workspace_sync_outside_its_volumes_or_onto_a_volume_root_is_refused() {
    for (rule, says) in [
        (
            "{ from: ./src, to: /opt/src }",
            "not inside one of the workspace's volumes",
        ),
        (
            "{ from: ./src, to: /workspace/ }",
            "is the root of volume `workspace`",
        ),
        ("{ from: ./src, to: /workspace/../etc }", "`..`"),
        ("{ from: ./nope, to: /workspace/src }", "is not a directory"),
        ("{ to: /workspace/src }", "no `from`"),
        ("{ from: ./src }", "no `to`"),
    ] {
        let spec = format!(
            "{CLUSTER}  workspaces:\n    - name: dev\n      image: busybox\n      sync: [{rule}]\n"
        );
        let (_dir, loaded) = load_in_project(&spec);
        let Err(ConfigErrors(e)) = loaded else {
            panic!("{rule} must be refused")
        };
        assert!(e[0].key.starts_with("spec.workspaces[0].sync[0]"), "{e:#?}");
        assert!(e[0].message.contains(says), "{rule}: {e:#?}");
        assert!(e[0].line > 0, "{e:#?}");
    }
}
