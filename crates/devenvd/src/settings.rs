//! The daemon's own config file, `$XDG_CONFIG_HOME/devenv/devenvd.yml` (default
//! `~/.config/devenv/devenvd.yml`, or `--config FILE`): settings of devenvd itself,
//! as opposed to `~/.devenv/config.yml`, which is a layer of every project's config.
//!
//! ```yaml
//! dashboard:
//!   port: 7420      # 0: any free port
//!   enabled: true
//! ```

use std::io::Read as _;
use std::path::{Path, PathBuf};

use devenv_api::Env;

use crate::web::Wanted;

/// Larger files are refused unread: the settings fit in a few lines.
const MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub dashboard: DashboardSettings,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSettings {
    /// 127.0.0.1 port of the dashboard; 0 picks any free one.
    pub port: Option<u16>,
    /// `false` turns the dashboard off.
    pub enabled: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than {} KiB; devenvd's settings fit in a few lines", path.display(), MAX_BYTES / 1024)]
    TooLarge { path: PathBuf },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        #[source]
        source: serde_yaml::Error,
    },
}

/// The config file: `explicit` (`--config`), else `$XDG_CONFIG_HOME/devenv/devenvd.yml`,
/// else `$HOME/.config/devenv/devenvd.yml`. None without any of them.
pub fn path(env: &impl Env, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let base = match env.var("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env.var("HOME")?).join(".config"),
    };
    Some(base.join("devenv").join("devenvd.yml"))
}

/// Reads the settings; a missing file (unless named explicitly) means the defaults.
pub fn load(path: &Path, explicit: bool) -> Result<Settings, SettingsError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(Settings::default())
        }
        Err(source) => {
            return Err(SettingsError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut text = String::new();
    file.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|source| SettingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if text.len() as u64 > MAX_BYTES {
        return Err(SettingsError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Settings, SettingsError> {
    if text.trim().is_empty() {
        return Ok(Settings::default());
    }
    serde_yaml::from_str::<Option<Settings>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|source| {
            let (line, column) = source
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            // serde_yaml repeats the location in its text; here it leads the line.
            let message = source
                .to_string()
                .replace(&format!(" at line {line} column {column}"), "");
            SettingsError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
                source,
            }
        })
}

/// Whether and where the dashboard listens: `--no-dashboard` wins, then
/// `--dashboard-port`, then the file (`dashboard.enabled`, `dashboard.port`), then
/// the default port. A broken file turns it off, saying where the file is wrong.
pub fn dashboard(
    no_dashboard: bool,
    flag_port: Option<u16>,
    settings: Result<Settings, SettingsError>,
    file: PathBuf,
) -> Wanted {
    if no_dashboard {
        return Wanted::Disabled("the dashboard is disabled (devenvd --no-dashboard)".into());
    }
    if let Some(port) = flag_port {
        if let Err(e) = &settings {
            tracing::warn!("{e}");
        }
        return Wanted::Port {
            port,
            from: "--dashboard-port".into(),
            config_file: file,
        };
    }
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            return Wanted::Disabled(format!(
                "the dashboard is unavailable: {e}; fix the file and restart devenvd                  (`devenv daemon stop`; the next devenv command starts it again)"
            ))
        }
    };
    if settings.dashboard.enabled == Some(false) {
        return Wanted::Disabled(format!(
            "the dashboard is disabled by `dashboard.enabled: false` in {}",
            file.display()
        ));
    }
    match settings.dashboard.port {
        Some(port) => Wanted::Port {
            port,
            from: format!("dashboard.port in {}", file.display()),
            config_file: file,
        },
        None => Wanted::Port {
            port: crate::web::DEFAULT_PORT,
            from: "the default port".into(),
            config_file: file,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_choice_order() {
        let f = || PathBuf::from("/c/devenvd.yml");
        let port = |w: Wanted| match w {
            Wanted::Port { port, .. } => Some(port),
            Wanted::Disabled(_) => None,
        };
        let with = |p: Option<u16>, e: Option<bool>| {
            Ok(Settings {
                dashboard: DashboardSettings {
                    port: p,
                    enabled: e,
                },
            })
        };
        assert_eq!(port(dashboard(true, Some(1), with(None, None), f())), None);
        assert_eq!(
            port(dashboard(false, Some(0), with(Some(9), None), f())),
            Some(0)
        );
        assert_eq!(
            port(dashboard(false, None, with(Some(9), None), f())),
            Some(9)
        );
        assert_eq!(
            port(dashboard(false, None, with(None, None), f())),
            Some(7420)
        );
        let Wanted::Disabled(why) = dashboard(false, None, with(Some(9), Some(false)), f()) else {
            panic!("enabled: false");
        };
        assert!(why.contains("/c/devenvd.yml"), "{why}");
        let broken = parse(Path::new("/c/devenvd.yml"), "dashboard: 3\n");
        let Wanted::Disabled(why) = dashboard(false, None, broken, f()) else {
            panic!("broken file");
        };
        assert!(why.contains("/c/devenvd.yml:1:"), "{why}");
        let broken = parse(Path::new("/c/devenvd.yml"), "dashboard: 3\n");
        assert_eq!(port(dashboard(false, Some(5), broken, f())), Some(5));
    }

    fn p() -> &'static Path {
        Path::new("/cfg/devenvd.yml")
    }

    #[test]
    fn path_prefers_flag_then_xdg_then_home() {
        let env = |k: &str| match k {
            "XDG_CONFIG_HOME" => Some("/x".to_string()),
            "HOME" => Some("/h".to_string()),
            _ => None,
        };
        assert_eq!(path(&env, Some(Path::new("/f.yml"))), Some("/f.yml".into()));
        assert_eq!(path(&env, None), Some("/x/devenv/devenvd.yml".into()));
        let home_only = |k: &str| (k == "HOME").then(|| "/h".to_string());
        assert_eq!(
            path(&home_only, None),
            Some("/h/.config/devenv/devenvd.yml".into())
        );
        assert_eq!(path(&|_: &str| None, None), None);
    }

    #[test]
    fn parses_the_dashboard_section() {
        let s = parse(p(), "dashboard:\n  port: 8123\n  enabled: false\n").unwrap();
        assert_eq!(s.dashboard.port, Some(8123));
        assert_eq!(s.dashboard.enabled, Some(false));
        assert_eq!(parse(p(), "").unwrap(), Settings::default());
        assert_eq!(parse(p(), "# nothing\n").unwrap(), Settings::default());
    }

    #[test]
    fn errors_are_located() {
        for (text, line) in [
            ("dashboard:\n  port: 70000\n", 2),
            ("dashboard:\n  prot: 1\n", 2),
            ("dashbaord: {}\n", 1),
            ("dashboard:\n  port: [1]\n", 2),
            ("dashboard:\n\tport: 1\n", 2),
        ] {
            let e = parse(p(), text).unwrap_err();
            let SettingsError::Invalid { line: l, .. } = &e else {
                panic!("{e}");
            };
            assert_eq!(*l, line, "{text:?}: {e}");
            assert!(e.to_string().starts_with("/cfg/devenvd.yml:"), "{e}");
            assert!(!e.to_string().contains(" at line "), "{e}");
        }
    }

    #[test]
    fn reading_is_bounded_and_a_missing_default_file_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("devenvd.yml");
        assert_eq!(load(&missing, false).unwrap(), Settings::default());
        assert!(matches!(
            load(&missing, true),
            Err(SettingsError::Read { .. })
        ));
        let big = dir.path().join("big.yml");
        std::fs::write(&big, "#".repeat(MAX_BYTES as usize + 10)).unwrap();
        assert!(matches!(
            load(&big, false),
            Err(SettingsError::TooLarge { .. })
        ));
    }
}
