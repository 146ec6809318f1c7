//! `spec.cluster.image` and `build.tarball`: values checked, mistakes located.

use super::*;

const HEAD: &str = "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\n";

fn load_spec(spec: &str) -> Result<Environment, Vec<ConfigError>> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".devenv")).expect("mkdir");
    std::fs::write(
        dir.path().join(".devenv/config.yml"),
        format!("{HEAD}spec:\n{spec}"),
    )
    .expect("write");
    load(&LoadRequest {
        start_dir: dir.path().to_path_buf(),
        ..LoadRequest::default()
    })
    .map(|l| l.environment)
    .map_err(|ConfigErrors(e)| e)
}

const WEB: &str = "  services:\n    - name: web\n      build: { context: ., tarball: ./img.tar }\n      ports: [80]\n";

#[test]
fn a_registry_and_a_tarball_are_read() {
    let env = load_spec(&format!(
        "  cluster: {{ provider: kubeconfig, image: {{ registry: \"127.0.0.1:5000/team\" }} }}\n{WEB}"
    ))
    .unwrap();
    let reg = env.cluster.as_ref().unwrap().registry.clone().unwrap();
    assert_eq!(reg.host, "127.0.0.1:5000");
    assert_eq!(reg.path.as_deref(), Some("team"));
    assert!(!reg.insecure);
    assert_eq!(
        reg.repository("shop", "web"),
        "127.0.0.1:5000/team/shop-web"
    );
    let b = env.services[0].build.as_ref().unwrap();
    assert!(b.tarball.as_ref().unwrap().ends_with("img.tar"));
    assert!(b.tarball.as_ref().unwrap().is_absolute());
}

#[test]
fn a_bad_registry_is_located_with_a_hint() {
    let e = load_spec(
        "  cluster:\n    provider: kubeconfig\n    image:\n      registry: http://registry.lan:5000\n",
    )
    .unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "spec.cluster.image.registry");
    assert_eq!(e[0].line, 9);
    assert!(e[0].message.contains("scheme"), "{}", e[0].message);
    assert!(e[0].hint.as_deref().unwrap().contains("insecure: true"));

    let e = load_spec("  cluster:\n    image:\n      registry: reg:http\n").unwrap_err();
    assert_eq!(e[0].key, "spec.cluster.image.registry");
    assert!(e[0].message.contains("not a port"), "{}", e[0].message);
}

#[test]
fn unknown_keys_and_idle_settings_are_errors() {
    let e = load_spec("  cluster:\n    image:\n      registyr: reg:5000\n").unwrap_err();
    assert!(e[0].key.starts_with("spec.cluster.image"), "{e:?}");
    assert!(
        e[0].hint.as_deref().unwrap_or("").contains("registry"),
        "{e:?}"
    );
    // `insecure` without a registry would do nothing.
    let e = load_spec("  cluster:\n    image: { insecure: true }\n").unwrap_err();
    assert_eq!(e[0].key, "spec.cluster.image.insecure");
    // A tarball nobody pushes would do nothing.
    let e = load_spec(&format!("  cluster: {{ provider: kubeconfig }}\n{WEB}")).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "spec.services[0].build.tarball");
    assert!(e[0].message.contains("spec.cluster.image.registry"));
}
