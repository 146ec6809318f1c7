//! Command plugins: `devenv NAME` runs `devenv-NAME` from the project's
//! `.devenv/plugins`, `~/.devenv/plugins` or PATH, with the daemon's socket and the
//! environment's name in its environment; `devenv --help` lists them.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use devenv_e2e::{workspace_root, RunOpts, TestEnv};

fn install(dir: &Path, name: &str, script: &str) {
    std::fs::create_dir_all(dir).expect("mkdir plugins");
    let path = dir.join(name);
    std::fs::write(&path, script).expect("write plugin");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn the_example_plugin_runs_with_the_socket_and_env_and_calls_back_into_devenv() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.project.join(".devenv")).expect("mkdir .devenv");
    let example = workspace_root().join("examples/plugins/devenv-whereami");
    let script = std::fs::read_to_string(&example).expect("read the example plugin");
    install(
        &env.home.join(".devenv/plugins"),
        "devenv-whereami",
        &script,
    );

    let out = env.devenv_ok(&["--env", "staging", "whereami", "one", "two"]);
    let socket = env.socket.display().to_string();
    assert!(out.stdout.contains(&format!("socket:  {socket}")), "{out}");
    assert!(out.stdout.contains("env:     staging"), "{out}");
    assert!(out.stdout.contains("plugin:  whereami"), "{out}");
    assert!(out.stdout.contains("args:    one two"), "{out}");
    let project = std::fs::canonicalize(&env.project).expect("canonical project");
    assert!(
        out.stdout
            .contains(&format!("project: {}", project.display())),
        "{out}"
    );
    // Its `devenv ls` reached this env's daemon through DEVENV_BIN and the socket.
    assert!(
        env.socket.exists(),
        "the plugin's `devenv ls` started no daemon\n{out}"
    );

    // The plugin's exit code is devenv's.
    let failed = env.devenv(&["whereami", "--exit", "9"]);
    assert_eq!(failed.code, Some(9), "{failed}");
}

#[test]
fn project_plugins_shadow_path_ones_and_help_lists_them() {
    let env = TestEnv::new();
    let bin = env.root().join("bin");
    install(&bin, "devenv-greet", "#!/bin/sh\necho from-path \"$@\"\n");
    install(&bin, "devenv-onpath", "#!/bin/sh\necho only-on-path\n");
    install(
        &env.project.join(".devenv/plugins"),
        "devenv-greet",
        "#!/bin/sh\necho from-project \"$@\"\n",
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let opts = || RunOpts {
        env: vec![("PATH".into(), path.clone())],
        ..RunOpts::default()
    };
    let out = env.run(&env.bins.devenv, &["greet", "x"], opts());
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout.trim(), "from-project x", "{out}");
    let out = env.run(&env.bins.devenv, &["onpath"], opts());
    assert_eq!(out.stdout.trim(), "only-on-path", "{out}");

    let help = env.run(&env.bins.devenv, &["--help"], opts());
    assert_eq!(help.code, Some(0), "{help}");
    let section = help
        .stdout
        .split("Plugins:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Plugins: section\n{help}"));
    assert!(section.contains("greet"), "{help}");
    assert!(section.contains("onpath"), "{help}");

    let missing = env.devenv(&["nosuchplugin"]);
    assert_eq!(missing.code, Some(2), "{missing}");
    assert!(
        missing.stderr.contains("devenv-nosuchplugin") && missing.stderr.lines().count() == 1,
        "want a one-line error naming the executable\n{missing}"
    );
    assert!(!env.socket.exists(), "a missing plugin started the daemon");
}
