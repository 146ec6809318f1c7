//! External secrets on Kubernetes: a value from each provider that can run here (the
//! client's environment, a dotenv file, a command, a real Vault) reaches the pod's
//! environment through a Secret; no value is in the Deployment, its annotations, or
//! anything devenv shows or keeps; a rotated value updates the Secret and rolls the pods
//! (the pod template's `devenv.dev/secretsRevision` changes), an `up` with nothing
//! changed leaves them alone. (`keychain` resolves to values the same way before this
//! point; it is tested into a local process by secret_keychain.rs.)

use std::time::Duration;

use devenv_e2e::kube::{env_for, kc, kc_try};
use devenv_e2e::vault::Vault;
use devenv_e2e::{files_containing, wait_until};

const BUSYBOX: &str = "devenv.test/busybox:1.35.0";
const VARS: [&str; 4] = ["ENV_TOKEN", "FILE_TOKEN", "CMD_TOKEN", "VAULT_TOKEN_VALUE"];

#[test]
#[ignore = "needs the test cluster (tests/cluster/test.sh runs it)"]
fn k8s_external_secrets_reach_the_pod_and_rotate_without_leaking() {
    let (mut t, env) = env_for("extsec");
    let ns = format!("devenv-{env}");
    let vault = Vault::start(&t.id);
    let id = t.id.clone();
    let values = |round: &str| -> Vec<String> {
        ["env", "file", "command", "vault"]
            .iter()
            .map(|p| format!("{p}-{round}-{id}"))
            .collect()
    };
    let first = values("one");
    t.set_var("MY_SHELL_TOKEN", &first[0]);
    t.set_var("VAULT_ADDR", &vault.addr);
    t.set_var("VAULT_TOKEN", &vault.token);
    let project = t.project.clone();
    let write_values = |v: &[String]| {
        std::fs::create_dir_all(project.join("secrets")).unwrap();
        std::fs::write(
            project.join("secrets/dev.env"),
            format!("FILE_TOKEN={}\n", v[1]),
        )
        .unwrap();
        std::fs::write(project.join("token-store"), &v[2]).unwrap();
        vault.ok(&["kv", "put", "secret/shop/api", &format!("token={}", v[3])]);
    };
    write_values(&first);
    std::fs::write(t.project.join("get-token.sh"), "cat token-store\n").unwrap();
    t.write_config(&format!(
        r#"apiVersion: devenv/v1
kind: Environment
metadata:
  name: {env}
spec:
  cluster: {{ provider: kubeconfig }}
  secrets:
    - name: from-env
      type: external-secret
      provider: env
      keys: {{ ENV_TOKEN: MY_SHELL_TOKEN }}
    - name: from-dotenv
      type: external-secret
      provider: file
      path: ./secrets/dev.env
    - name: from-command
      type: external-secret
      provider: command
      command: [sh, ./get-token.sh]
      key: CMD_TOKEN
    - name: from-vault
      type: external-secret
      provider: vault
      path: shop/api
      keys: {{ VAULT_TOKEN_VALUE: token }}
  services:
    - name: app
      image: {BUSYBOX}
      secrets: [from-env, from-dotenv, from-command, from-vault]
      command: 'echo started && exec sleep 100000'
"#
    ));

    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up should succeed\n{up}");

    let in_pod = || -> Option<Vec<String>> {
        let mut got = Vec::new();
        for var in VARS {
            let echo = format!("echo \"${var}\"");
            let out = kc_try(&["exec", "-n", &ns, "deploy/app", "--", "sh", "-c", &echo]);
            if !out.status.success() {
                return None;
            }
            got.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
        Some(got)
    };
    assert_eq!(in_pod(), Some(first.clone()), "the pod's environment");

    let revision = || {
        kc(&[
            "get",
            "deployment",
            "app",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.template.metadata.annotations.devenv\\.dev/secretsRevision}",
        ])
    };
    let rev1 = revision();
    assert!(!rev1.is_empty(), "no secretsRevision annotation");

    // Not in the Deployment (its env, annotations), nor anywhere devenv shows or keeps.
    let deployment = kc(&["get", "deployment", "app", "-n", &ns, "-o", "yaml"]);
    let mut shown = vec![up.combined(), deployment];
    for args in [
        &["status", "--json"][..],
        &["status"],
        &["logs", "app"],
        &["config", "show"],
    ] {
        shown.push(t.devenv_ok(args).combined());
    }
    for text in &shown {
        for v in &first {
            assert!(!text.contains(v.as_str()), "{v} shown:\n{text}");
        }
        assert!(
            !text.contains(&vault.token),
            "the Vault token is shown:\n{text}"
        );
    }
    for v in first.iter().chain([&vault.token]) {
        let leaked = files_containing(&t.data_dir, v.as_bytes());
        assert!(leaked.is_empty(), "{v} is stored in {leaked:?}");
    }

    // Nothing changed: no new revision.
    t.devenv_ok(&["up"]);
    assert_eq!(
        revision(),
        rev1,
        "an up with nothing changed rolled the pods"
    );

    // Rotated values (the env var, the file, the command's store, a new Vault version):
    // the Secrets are updated and the pods roll with the new values.
    let second = values("two");
    t.set_var("MY_SHELL_TOKEN", &second[0]);
    write_values(&second);
    let up = t.devenv(&["up"]);
    assert_eq!(up.code, Some(0), "up after the rotation\n{up}");
    assert_ne!(
        revision(),
        rev1,
        "the pod template's revision did not change"
    );
    assert!(
        wait_until(Duration::from_secs(120), || in_pod()
            == Some(second.clone())),
        "the rotated values did not reach the pod: {:?}",
        in_pod()
    );
    let deployment = kc(&["get", "deployment", "app", "-n", &ns, "-o", "yaml"]);
    for v in &second {
        assert!(!deployment.contains(v.as_str()), "{v} in the Deployment");
    }

    t.devenv_ok(&["down"]);
}
