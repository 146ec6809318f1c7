//! Shared by the benchmark programs in src/bin.

use std::time::Duration;

/// Cores of this machine, printed with every result table.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Prints `(metric, value, target)` rows under a title line naming the machine.
pub fn print_table(program: &str, rows: &[(String, String, String)]) {
    let metric_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    let value_w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(5);
    println!();
    println!("{program} (release binaries, {} cores)", cores());
    println!("{:<metric_w$} {:>value_w$}  target", "metric", "value");
    println!("{}", "-".repeat(metric_w + value_w + 10));
    for (metric, value, target) in rows {
        println!("{metric:<metric_w$} {value:>value_w$}  {target}");
    }
}

/// Milliseconds of a sorted sample at quantile `q` (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Durations of repeated runs, in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Sample(pub Vec<f64>);

impl Sample {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1000.0);
    }
    pub fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    pub fn median(&self) -> f64 {
        quantile(&self.sorted(), 0.5)
    }
    pub fn p99(&self) -> f64 {
        quantile(&self.sorted(), 0.99)
    }
}

/// The value after `flag` as a positive number; anything else ends the program through
/// `usage` (which prints what is wrong and exits).
pub fn positive_arg(
    args: &mut impl Iterator<Item = String>,
    flag: &str,
    usage: fn(&str) -> !,
) -> usize {
    args.next()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or_else(|| usage(&format!("{flag} needs a positive number")))
}
