//! Turning API messages into text and JSON for people and scripts.

pub mod cluster;
pub mod color;
pub mod config_errors;
pub mod forward;
pub mod logs;
pub mod logstats;
pub mod progress;
pub mod spinner;
pub mod status;
pub mod table;
pub mod time;

/// Writes one line to stdout; a closed pipe ends the program quietly.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}
