//! ANSI colours, off when NO_COLOR, --no-color or not a terminal.

/// Colours a service name can get; readable on dark and light themes. No red: that
/// marks errors.
const SERVICE_COLORS: [u8; 10] = [36, 33, 32, 35, 34, 96, 93, 92, 95, 94];

pub const BOLD: &str = "1";
pub const DIM: &str = "2";
pub const RED: &str = "31";
pub const GREEN: &str = "32";
pub const YELLOW: &str = "33";

/// The SGR code of a service's colour: stable across runs and machines (FNV-1a).
pub fn service_color(name: &str) -> u8 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    SERVICE_COLORS[(hash % SERVICE_COLORS.len() as u32) as usize]
}

/// `text` wrapped in the SGR `code` when `on`.
pub fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The colour for a service state label.
pub fn state_code(label: &str) -> &'static str {
    match label {
        "ready" | "completed" => GREEN,
        "failed" | "unhealthy" => RED,
        "starting" | "stopping" | "pending" | "degraded" => YELLOW,
        _ => DIM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_colours_are_stable_and_spread() {
        assert_eq!(service_color("api"), service_color("api"));
        // Pinned: a service keeps its colour from one release to the next.
        assert_eq!(
            service_color(""),
            SERVICE_COLORS[(0x811c_9dc5u32 % 10) as usize]
        );
        let names = [
            "api", "web", "db", "cache", "worker", "queue", "auth", "search",
        ];
        let distinct: std::collections::HashSet<_> =
            names.iter().map(|n| service_color(n)).collect();
        assert!(distinct.len() >= 3, "only {distinct:?} for {names:?}");
    }

    #[test]
    fn paint_only_when_on() {
        assert_eq!(paint(false, RED, "x"), "x");
        assert_eq!(paint(true, RED, "x"), "\x1b[31mx\x1b[0m");
    }
}
