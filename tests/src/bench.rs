//! Shared by the benchmark programs in src/bin.

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
