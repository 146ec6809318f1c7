//! "Did you mean" hints: most config mistakes are typos of a name that exists nearby.

/// The candidate closest to `word`, if any is close enough to be a plausible typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `` `a`, `b`, `c` ``
pub(crate) fn ticked<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "did you mean `x`?" when something is close, else the list of what is allowed here.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
    label: &str,
) -> String {
    match closest(word, candidates.clone()) {
        Some(c) => format!("did you mean `{c}`?"),
        None => {
            let all = ticked(candidates);
            if all.is_empty() {
                "remove it".to_owned()
            } else {
                format!("{label}: {all}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["name", "dependencies", "ports"];
        assert_eq!(closest("dependecies", keys), Some("dependencies"));
        assert_eq!(closest("zzz", keys), None);
        assert_eq!(
            did_you_mean("zzz", keys, "valid keys"),
            "valid keys: `name`, `dependencies`, `ports`"
        );
    }
}
