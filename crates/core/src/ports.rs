//! Who listens on a local TCP port, read from /proc (Linux): the listening sockets
//! of `/proc/net/tcp{,6}` and the processes whose `/proc/PID/fd` hold them. Used to
//! name what holds a port a forward or a service wants, and to tell whether a port
//! a readiness probe reached is served by the service itself.
//!
//! Not a crate (`procfs`, `netstat2`): the two tables and one `readlink` per fd are
//! all that is needed, and a full /proc model would be a large dependency for it.

use std::fmt;
use std::path::Path;

/// A process listening on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its command line (arguments joined by spaces, shortened), else its `comm`.
    pub command: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

/// A port someone listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    pub port: u16,
    /// The listening processes this user can see; empty when none is visible
    /// (another user's process).
    pub holders: Vec<Holder>,
}

impl InUse {
    /// Who holds it: "pid 42 (python3 -m http.server)", several joined by commas.
    pub fn who(&self) -> String {
        if self.holders.is_empty() {
            return "a process this user cannot see".into();
        }
        self.holders
            .iter()
            .map(Holder::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for InUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {} is in use by {}", self.port, self.who())
    }
}

/// Longest command line shown for a holder.
const COMMAND_CHARS: usize = 80;

/// Who listens on TCP `port` (any address), or None when nobody does or it cannot be
/// told (no /proc).
pub fn in_use(port: u16) -> Option<InUse> {
    let inodes = listening_inodes_all(port);
    if inodes.is_empty() {
        return None;
    }
    Some(InUse {
        port,
        holders: holders_of(&inodes),
    })
}

/// The first holder's description ("pid 42 (python3 -m http.server)"), for messages.
pub fn holder(port: u16) -> Option<String> {
    in_use(port)?.holders.first().map(Holder::to_string)
}

fn listening_inodes_all(port: u16) -> Vec<String> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect()
}

/// The processes holding any of the socket `inodes`, each once.
fn holders_of(inodes: &[String]) -> Vec<Holder> {
    let targets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|link| targets.iter().any(|t| link.as_os_str() == t.as_str()))
        });
        if holds {
            out.push(Holder {
                pid,
                command: command_of(&entry.path()),
            });
        }
    }
    out
}

fn command_of(proc_dir: &Path) -> String {
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let mut text = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    if text.is_empty() {
        text = std::fs::read_to_string(proc_dir.join("comm"))
            .map(|c| c.trim().to_owned())
            .unwrap_or_default();
    }
    if text.chars().count() > COMMAND_CHARS {
        text = text.chars().take(COMMAND_CHARS - 1).collect::<String>() + "…";
    }
    text
}

/// Whether process `pid` belongs to a service: it is in process group `pgid` (the
/// service's group, when given), or its environment carries `marker` (its
/// descendants that left the group, e.g. a server that daemonized).
pub fn belongs_to(pid: u32, pgid: Option<i32>, marker: &str) -> bool {
    let pid_t = nix::unistd::Pid::from_raw(pid as i32);
    if pgid.is_some_and(|pgid| nix::unistd::getpgid(Some(pid_t)).is_ok_and(|g| g.as_raw() == pgid))
    {
        return true;
    }
    let needle = format!("{}={marker}", crate::process::MARKER_VAR);
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
}

/// The value of the service marker in process `pid`'s environment, if it has one.
pub fn marker_of(pid: u32) -> Option<String> {
    let needle = format!("{}=", crate::process::MARKER_VAR);
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(needle.as_bytes()))
        .map(|m| String::from_utf8_lossy(m).into_owned())
}

/// Socket inodes of the listening sockets on `port` in a /proc/net/tcp{,6} table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let hex_port = local.rsplit(':').next()?;
            let listening = *fields.get(3)? == LISTEN;
            (listening && u16::from_str_radix(hex_port, 16).ok()? == port)
                .then(|| fields.get(9).map(|s| (*s).to_owned()))
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_found_in_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 8080), ["4242"]);
        assert!(listening_inodes(table, 8081).is_empty());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_listener_is_named_with_its_pid_and_command() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let used = in_use(port).expect("the port is listened on");
        assert_eq!(used.holders.len(), 1, "{used}");
        assert_eq!(used.holders[0].pid, std::process::id());
        let exe = std::env::args().next().unwrap();
        assert!(
            used.holders[0]
                .command
                .starts_with(&exe[..exe.len().min(40)]),
            "{used}"
        );
        assert!(
            used.to_string().starts_with(&format!(
                "port {port} is in use by pid {} (",
                std::process::id()
            )),
            "{used}"
        );
        // This test process is in its own group, not in group 1 and without a marker.
        let own = nix::unistd::getpgrp().as_raw();
        assert!(belongs_to(std::process::id(), Some(own), "x"));
        assert!(!belongs_to(std::process::id(), Some(1), "no-such-marker"));
        assert!(!belongs_to(std::process::id(), None, "no-such-marker"));
        drop(taken);
        assert_eq!(in_use(port), None);
    }
}
