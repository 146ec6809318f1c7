//! What reading a line's level costs (`logs::level::detect`), per line shape, to set
//! beside the log path's throughput (docs/benchmarks.md, "Log levels"):
//!
//!   cargo run --release -p devenv-core --example level_cost [-- LINES]

use std::hint::black_box;
use std::time::Instant;

use devenv_core::logs::{level, Stream};

const SHAPES: [(&str, &str); 6] = [
    (
        "bench-logs' line (timestamp, INFO)",
        "2024-05-01T12:00:00Z INFO request handled path=/api/items status=200 0123456789",
    ),
    (
        "no level (plain text)",
        "listening on http://127.0.0.1:8000, press Ctrl-C to stop the server now",
    ),
    (
        "logfmt",
        "time=2024-05-01T12:00:00Z level=warn msg=\"slow query\" duration=1.2s table=items",
    ),
    (
        "JSON (pino)",
        r#"{"level":30,"time":1714564800000,"pid":42,"hostname":"web","msg":"request completed","res":{"statusCode":200},"responseTime":3}"#,
    ),
    (
        "JSON without a level",
        r#"{"time":1714564800000,"pid":42,"hostname":"web","msg":"request completed","res":{"statusCode":200}}"#,
    ),
    ("long plain line (2 KiB)", ""),
];

fn main() {
    let lines: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let long = "x".repeat(2048);
    println!("{:<40} {:>10} {:>14}", "line", "ns/line", "lines/s");
    for (name, text) in SHAPES {
        let text = if text.is_empty() { long.as_str() } else { text };
        // Warm-up, then the measured loop.
        for _ in 0..lines / 10 {
            black_box(level::detect(Stream::Stdout, black_box(text)));
        }
        let start = Instant::now();
        for _ in 0..lines {
            black_box(level::detect(Stream::Stdout, black_box(text)));
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(lines);
        println!("{name:<40} {ns:>10.1} {:>14.0}", 1e9 / ns);
    }
}
