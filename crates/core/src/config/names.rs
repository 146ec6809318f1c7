//! DNS-1123 labels: environment and service names become Kubernetes object names,
//! namespaces and hostnames, so they follow Kubernetes' rules even for local services.

pub(crate) const LABEL_RULE: &str =
    "use lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters";

pub(crate) fn is_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    !name.is_empty()
        && name.len() <= 63
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The nearest valid label, for hints and for `devenv init` (which names the environment
/// after its directory). Empty when nothing usable is left.
pub(crate) fn to_label(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(63).collect();
    trimmed.trim_end_matches('-').to_owned()
}

/// The hint for an invalid name: the fixed-up name when there is one.
pub(crate) fn label_hint(raw: &str) -> String {
    match to_label(raw) {
        fixed if fixed.is_empty() => LABEL_RULE.to_owned(),
        fixed => format!("{LABEL_RULE}, e.g. `{fixed}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(is_label("shop-api2"));
        assert!(!is_label("Shop"));
        assert!(!is_label("-a"));
        assert!(!is_label(&"a".repeat(64)));
        assert_eq!(to_label("My_Project.v2 "), "my-project-v2");
        assert_eq!(to_label("__"), "");
    }
}
