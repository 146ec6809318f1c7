//! The systemd user units and the LaunchAgent, filled in for this machine.

use std::path::{Path, PathBuf};

use devenv_api::Env;

const SERVICE: &str = include_str!("../../../systemd/devenvd.service");
const SOCKET: &str = include_str!("../../../systemd/devenvd.socket");
const PLIST: &str = include_str!("../../../launchd/dev.devenv.devenvd.plist");

pub const LAUNCHD_LABEL: &str = "dev.devenv.devenvd";

#[derive(Debug, PartialEq, Eq)]
pub struct UnitFile {
    pub path: PathBuf,
    pub contents: String,
}

/// `$XDG_CONFIG_HOME/systemd/user` (default `~/.config/systemd/user`).
pub fn systemd_dir(env: &impl Env) -> Option<PathBuf> {
    let config = match env.var("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env.var("HOME")?).join(".config"),
    };
    Some(config.join("systemd").join("user"))
}

pub fn systemd_units(dir: &Path, devenvd: &Path) -> [UnitFile; 2] {
    [
        UnitFile {
            path: dir.join("devenvd.service"),
            contents: SERVICE.replace("@DEVENVD@", &systemd_quote(devenvd)),
        },
        UnitFile {
            path: dir.join("devenvd.socket"),
            contents: SOCKET.to_string(),
        },
    ]
}

pub fn launchd_agent(home: &Path, devenvd: &Path, socket: &Path, log: &Path) -> UnitFile {
    let contents = PLIST
        .replace("@DEVENVD@", &xml_escape(devenvd))
        .replace("@SOCKET@", &xml_escape(socket))
        .replace("@LOG@", &xml_escape(log));
    UnitFile {
        path: home
            .join("Library/LaunchAgents")
            .join(format!("{LAUNCHD_LABEL}.plist")),
        contents,
    }
}

/// An ExecStart word: `%` and `$` are specifiers to systemd, spaces split words.
fn systemd_quote(p: &Path) -> String {
    let s = p.to_string_lossy().replace('%', "%%").replace('$', "$$");
    if s.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '\'')
    {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

fn xml_escape(p: &Path) -> String {
    p.to_string_lossy()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_dir_honours_xdg_config_home() {
        let xdg = |k: &str| match k {
            "XDG_CONFIG_HOME" => Some("/cfg".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        assert_eq!(systemd_dir(&xdg), Some(PathBuf::from("/cfg/systemd/user")));
        let home = |k: &str| (k == "HOME").then(|| "/home/u".to_string());
        assert_eq!(
            systemd_dir(&home),
            Some(PathBuf::from("/home/u/.config/systemd/user"))
        );
        assert_eq!(systemd_dir(&|_: &str| None), None);
    }

    #[test]
    fn service_runs_devenvd_on_the_activated_socket() {
        let [service, socket] = systemd_units(Path::new("/u"), Path::new("/opt/bin/devenvd"));
        assert_eq!(service.path, PathBuf::from("/u/devenvd.service"));
        assert!(service
            .contents
            .contains("\nExecStart=/opt/bin/devenvd --socket %t/devenv/devenvd.sock\n"));
        for line in [
            "Type=simple",
            "Restart=on-failure",
            "KillMode=mixed",
            "TimeoutStopSec=45",
        ] {
            assert!(
                service.contents.contains(&format!("\n{line}\n")),
                "missing {line}"
            );
        }
        assert!(!service.contents.contains('@'), "unfilled placeholder");
        assert_eq!(socket.path, PathBuf::from("/u/devenvd.socket"));
        for line in [
            "ListenStream=%t/devenv/devenvd.sock",
            "SocketMode=0600",
            "DirectoryMode=0700",
        ] {
            assert!(
                socket.contents.contains(&format!("\n{line}\n")),
                "missing {line}"
            );
        }
    }

    #[test]
    fn awkward_paths_are_quoted() {
        assert_eq!(systemd_quote(Path::new("/a b/devenvd")), "\"/a b/devenvd\"");
        assert_eq!(systemd_quote(Path::new("/100%/devenvd")), "/100%%/devenvd");
        assert_eq!(xml_escape(Path::new("/a&b/<x>")), "/a&amp;b/&lt;x&gt;");
    }

    #[test]
    fn launch_agent_is_filled_in() {
        let agent = launchd_agent(
            Path::new("/Users/u"),
            Path::new("/opt/devenvd"),
            Path::new("/tmp/s.sock"),
            Path::new("/Users/u/log"),
        );
        assert_eq!(
            agent.path,
            PathBuf::from("/Users/u/Library/LaunchAgents/dev.devenv.devenvd.plist")
        );
        assert!(agent.contents.contains("<string>/opt/devenvd</string>"));
        assert!(agent.contents.contains("<string>/tmp/s.sock</string>"));
        assert!(agent
            .contents
            .contains("<key>StandardErrorPath</key>\n\t<string>/Users/u/log"));
        assert!(!agent.contents.contains('@'), "unfilled placeholder");
    }
}
