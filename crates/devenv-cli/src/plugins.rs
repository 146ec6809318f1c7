//! Command plugins, the way git and kubectl do them: `devenv foo ARGS` runs the
//! executable `devenv-foo` with ARGS. Looked up in the project's `.devenv/plugins`
//! (at or above the working directory), then `~/.devenv/plugins`, then `$PATH`: the
//! most specific place wins, so a project can pin its own version of a plugin.
//!
//! The plugin gets what it needs to talk to the daemon in its environment:
//! `DEVENV_SOCKET` (the resolved socket), `DEVENV_ENV` (`--env`, may be empty),
//! `DEVENV_PROJECT_DIR` (the project root, when there is one), `DEVENV_CONFIG`
//! (`-f`, when given), `DEVENV_BIN` (this `devenv`, to call back) and
//! `DEVENV_PLUGIN` (its own name). See docs/plugins.md.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::context::Ctx;
use crate::error::{CliError, Exit, Result};

/// The prefix of a plugin's executable name.
const PREFIX: &str = "devenv-";

/// The directories searched, most specific first.
fn search_dirs(start: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(project) = start.and_then(project_root) {
        dirs.push(project.join(".devenv").join("plugins"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        dirs.push(PathBuf::from(home).join(".devenv").join("plugins"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs
}

/// The nearest directory at or above `start` that holds `.devenv/` (the daemon's own
/// search looks for the config file; a plugins-only `.devenv/` counts here).
fn project_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join(".devenv").is_dir())
        .map(Path::to_path_buf)
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The plugin `name` resolves to, if any.
pub fn find(name: &str, start: Option<&Path>) -> Option<PathBuf> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    search_dirs(start)
        .into_iter()
        .map(|d| d.join(format!("{PREFIX}{name}")))
        .find(|p| is_executable(p))
}

/// Every plugin in reach, by name (the first found of each name, as `find` would).
pub fn discover(start: Option<&Path>) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    for dir in search_dirs(start) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
                continue;
            };
            if name.is_empty() || found.contains_key(name) {
                continue;
            }
            let path = entry.path();
            if is_executable(&path) {
                found.insert(name.to_owned(), path);
            }
        }
    }
    found
}

/// The "Plugins:" section of `devenv --help`, or `None` when there are none.
pub fn help_section(start: Option<&Path>) -> Option<String> {
    let found = discover(start);
    if found.is_empty() {
        return None;
    }
    let width = found.keys().map(String::len).max().unwrap_or(0);
    let mut out = String::from("Plugins:\n");
    for (name, path) in &found {
        out.push_str(&format!("  {name:width$}  {}\n", path.display()));
    }
    Some(out.trim_end().to_owned())
}

/// Runs `devenv-NAME ARGS...` in place of this process (its exit code is devenv's).
pub fn run(ctx: &Ctx, argv: Vec<OsString>) -> Result {
    let mut argv = argv.into_iter();
    let name = argv.next().unwrap_or_default();
    let name = name.to_string_lossy().into_owned();
    let start = ctx.project_dir().ok();
    let Some(program) = find(&name, start.as_deref()) else {
        return Err(CliError::usage(anyhow!(
            "unknown command `{name}`: no `{PREFIX}{name}` plugin in .devenv/plugins, ~/.devenv/plugins or on PATH (see `devenv --help`)"
        )));
    };
    let mut cmd = std::process::Command::new(&program);
    cmd.args(argv)
        .env("DEVENV_SOCKET", &ctx.paths.socket)
        .env("DEVENV_ENV", ctx.global.env.as_deref().unwrap_or(""))
        .env("DEVENV_PLUGIN", &name);
    if let Some(root) = start.as_deref().and_then(project_root) {
        cmd.env("DEVENV_PROJECT_DIR", root);
    }
    if let Some(dir) = &start {
        cmd.current_dir(dir);
    }
    if let Some(file) = &ctx.global.file {
        cmd.env("DEVENV_CONFIG", file);
    }
    if let Ok(me) = std::env::current_exe() {
        cmd.env("DEVENV_BIN", me);
    }
    // exec: signals, the terminal and the exit status are the plugin's own.
    let err = std::os::unix::process::CommandExt::exec(&mut cmd);
    Err(CliError::Report(
        Exit::Failed,
        anyhow!("cannot run plugin {}: {err}", program.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(dir: &Path, name: &str, mode: u32) {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(format!("{PREFIX}{name}"));
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn project_plugins_win_and_non_executables_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("proj");
        let sub = project.join("src/deep");
        std::fs::create_dir_all(&sub).unwrap();
        plugin(&project.join(".devenv/plugins"), "hello", 0o755);
        plugin(&project.join(".devenv/plugins"), "notexec", 0o644);
        let found = find("hello", Some(&sub)).unwrap();
        assert!(found.starts_with(&project), "{}", found.display());
        assert_eq!(find("notexec", Some(&sub)), None);
        assert_eq!(find("../hello", Some(&sub)), None);
        let all = discover(Some(&sub));
        assert!(all.contains_key("hello"));
        assert!(!all.contains_key("notexec"));
        let help = help_section(Some(&sub)).unwrap();
        assert!(help.starts_with("Plugins:\n  hello"), "{help}");
    }
}
