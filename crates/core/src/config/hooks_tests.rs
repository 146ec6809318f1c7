//! Hooks in the config: the short and long forms, defaults, and located errors.

use std::time::Duration;

use super::*;

const HEAD: &str = "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: shop\nspec:\n";

fn load(text: &str) -> Result<Loaded, ConfigErrors> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(".devenv/config.yml");
    load_str(&file, &format!("{HEAD}{text}"))
}

fn host(cmd: Command) -> Hook {
    Hook {
        run: HookRun::Host(cmd),
        timeout: DEFAULT_HOOK_TIMEOUT,
        on_error: OnError::Fail,
    }
}

#[test]
fn every_hook_point_takes_short_and_long_forms() {
    let loaded = load(
        "  cluster: { provider: kubeconfig }
  hooks:
    preUp: ./migrate.sh
    postUp: [\"echo up\", [touch, done]]
    preDown: { command: ./backup.sh, timeoutSeconds: 5, onError: continue }
    postDown: ~
  services:
    - name: api
      command: run
      hooks:
        preStart: [\"echo start\"]
        postReady: [{ command: [curl, localhost], onError: fail }]
        preStop: echo stop
    - name: web
      image: nginx
      hooks:
        postReady: { exec: nginx -s reload, timeoutSeconds: 30 }
",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let env = &loaded.environment;
    assert_eq!(
        env.hooks.pre_up,
        [host(Command::Shell("./migrate.sh".into()))]
    );
    assert_eq!(
        env.hooks.post_up,
        [
            host(Command::Shell("echo up".into())),
            host(Command::Exec(vec!["touch".into(), "done".into()]))
        ]
    );
    assert_eq!(
        env.hooks.pre_down,
        [Hook {
            run: HookRun::Host(Command::Shell("./backup.sh".into())),
            timeout: Duration::from_secs(5),
            on_error: OnError::Continue,
        }]
    );
    assert!(env.hooks.post_down.is_empty());
    let api = env.service("api").expect("api");
    assert_eq!(api.hooks.pre_start.len(), 1);
    assert_eq!(api.hooks.post_ready.len(), 1);
    assert_eq!(
        api.hooks.pre_stop,
        [host(Command::Shell("echo stop".into()))]
    );
    let web = env.service("web").expect("web");
    assert_eq!(
        web.hooks.post_ready[0].run,
        HookRun::Exec(Command::Shell("nginx -s reload".into()))
    );
}

#[test]
fn exec_is_only_for_a_kubernetes_service_after_it_started() {
    let errors = load(
        "  hooks: { preUp: { exec: migrate } }
  services:
    - name: api
      command: run
      hooks: { postReady: { exec: x } }
    - name: web
      image: nginx
      hooks: { preStart: { exec: x } }
",
    )
    .expect_err("exec where it can't run")
    .0;
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "spec.hooks.preUp[0].exec",
            "spec.services[0].hooks.postReady[0].exec",
            "spec.services[1].hooks.preStart[0].exec"
        ],
        "{}",
        ConfigErrors(errors.clone())
    );
    assert!(errors.iter().all(|e| e.hint.is_some()));
    assert!(errors[2]
        .hint
        .as_deref()
        .unwrap_or("")
        .contains("before the container exists"));
}

#[test]
fn a_hook_is_checked_and_located() {
    let errors = load(
        "  hooks:
    preUp: [{ command: x, exec: y }, { timeoutSeconds: 3 }, { command: x, timeoutSeconds: 0 }]
",
    )
    .expect_err("bad hooks")
    .0;
    let shown = ConfigErrors(errors.clone()).to_string();
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"spec.hooks.preUp[0]"), "{shown}");
    assert!(keys.contains(&"spec.hooks.preUp[1]"), "{shown}");
    assert!(
        keys.contains(&"spec.hooks.preUp[2].timeoutSeconds"),
        "{shown}"
    );
    // A shape error (an unknown key) is serde's, located by the YAML.
    let errors = load("  hooks:\n    postUp: [{ comand: x }]\n")
        .expect_err("typo")
        .0;
    assert_eq!(errors[0].key, "spec.hooks.postUp[0].comand");
    assert_eq!(errors[0].hint.as_deref(), Some("did you mean `command`?"));
    assert_eq!((errors[0].line, errors[0].column), (7, 16));
}

#[test]
fn an_unknown_hook_point_gets_a_hint() {
    let errors = load("  hooks: { postStart: x }\n")
        .expect_err("unknown point")
        .0;
    assert_eq!(errors[0].hint.as_deref(), Some("did you mean `postUp`?"));
    let errors =
        load("  services:\n    - name: api\n      command: run\n      hooks: { postStart: x }\n")
            .expect_err("unknown point")
            .0;
    assert_eq!(errors[0].hint.as_deref(), Some("did you mean `postReady`?"));
}
