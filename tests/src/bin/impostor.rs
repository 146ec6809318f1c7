//! A fake devenvd for tests/tests/hostile_socket.rs: listens on a Unix socket and
//! records every byte any client sends, so a test can prove a client sent nothing.
//!
//! `impostor SOCKET RECORD`: binds SOCKET (mode 0777, so any user can reach it),
//! prints `ready`, then for each connection prints `accepted PID` (the client's pid),
//! appends whatever the client sends to RECORD and prints `closed PID N` (N bytes)
//! when the client hangs up. It answers nothing and runs until killed.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, socket, record] = args.as_slice() else {
        eprintln!("usage: impostor SOCKET RECORD");
        std::process::exit(2);
    };
    let listener = UnixListener::bind(socket).unwrap_or_else(|e| fail("bind", socket, e));
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o777))
        .unwrap_or_else(|e| fail("chmod", socket, e));
    let record = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(record)
        .unwrap_or_else(|e| fail("open", record, e));
    let record = Arc::new(Mutex::new(record));
    say("ready");
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let pid = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials)
            .map_or(0, |c| c.pid());
        say(&format!("accepted {pid}"));
        let record = record.clone();
        std::thread::spawn(move || {
            let mut total = 0usize;
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = conn.read(&mut buf) {
                total += n;
                if let Ok(mut f) = record.lock() {
                    let _ = f.write_all(&buf[..n]);
                }
            }
            say(&format!("closed {pid} {total}"));
        });
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn fail(what: &str, path: &str, e: std::io::Error) -> ! {
    eprintln!("impostor: {what} {path}: {e}");
    std::process::exit(1);
}
