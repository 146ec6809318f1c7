//! CLI commands that need no running environment.

use devenv_e2e::TestEnv;

#[test]
fn daemon_install_print_shows_an_absolute_exec_start() {
    let env = TestEnv::new();
    let out = env.devenv_ok(&["daemon", "install", "--print"]);
    let exec = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart= line\n{out}"));
    let bin = exec.split_whitespace().next().unwrap_or_default();
    assert!(
        bin.starts_with('/'),
        "ExecStart binary is not absolute: {exec}"
    );
    assert!(
        bin.ends_with("/devenvd"),
        "ExecStart does not run devenvd: {exec}"
    );
    assert!(
        std::path::Path::new(bin).is_file(),
        "ExecStart binary {bin} does not exist"
    );
    // --print writes nothing.
    let unit_dir = env.home.join(".config/systemd/user");
    assert!(
        !unit_dir.exists(),
        "--print wrote into {}",
        unit_dir.display()
    );
}

#[test]
fn completion_scripts_for_each_shell() {
    let env = TestEnv::new();
    let bash = env.devenv_ok(&["completion", "bash"]);
    assert!(
        bash.stdout.contains("complete"),
        "no `complete` in bash completion\n{bash}"
    );
    for word in ["devenv", "up", "down", "status", "logs", "daemon"] {
        assert!(bash.stdout.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish"] {
        let out = env.devenv_ok(&["completion", shell]);
        assert!(
            out.stdout.contains("devenv"),
            "{shell} completion is empty\n{out}"
        );
    }
    let bad = env.devenv(&["completion", "tcsh"]);
    assert_eq!(bad.code, Some(2), "unknown shell is a usage error\n{bad}");
    // None of this needs the daemon.
    assert!(!env.socket.exists(), "completion started a daemon");
}
