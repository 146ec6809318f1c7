//! Column-aligned plain tables (`status`, `ls`).

use std::fmt::Write as _;

/// Renders `rows` under `header`, columns separated by two spaces, the last column
/// unpadded. Cells may carry ANSI colour: widths are measured without it.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(visible_width(cell));
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < cols {
                let pad = widths[i] - visible_width(cell);
                let _ = write!(l, "{cell}{:pad$}  ", "");
            } else {
                l.push_str(cell);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Width on screen: characters outside ANSI escape sequences.
pub fn visible_width(s: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_ignoring_colour() {
        let rows = vec![
            vec![
                "api".to_string(),
                "\x1b[32mready\x1b[0m".to_string(),
                "ok".to_string(),
            ],
            vec!["database".to_string(), "failed".to_string(), String::new()],
        ];
        let out = render(&["NAME", "STATE", "MESSAGE"], &rows);
        let plain: String = out.replace("\x1b[32m", "").replace("\x1b[0m", "");
        assert_eq!(
            plain,
            "NAME      STATE   MESSAGE\napi       ready   ok\ndatabase  failed\n"
        );
    }
}
