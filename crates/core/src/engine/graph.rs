//! Graph helpers over a checked config (acyclic, references resolved).

use std::collections::{BTreeSet, HashMap};

use crate::config::Environment;

/// `requested` plus everything they depend on, transitively, in declaration
/// order. Empty `requested` means every service. Unknown names are returned as `Err`.
pub fn closure(env: &Environment, requested: &[String]) -> Result<Vec<String>, Vec<String>> {
    if requested.is_empty() {
        return Ok(env.services.iter().map(|s| s.name.clone()).collect());
    }
    let unknown: Vec<String> = requested
        .iter()
        .filter(|r| env.service(r).is_none())
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = requested.iter().map(String::as_str).collect();
    while let Some(name) = stack.pop() {
        if seen.insert(name.to_string()) {
            if let Some(s) = env.service(name) {
                stack.extend(s.dependencies.iter().map(String::as_str));
            }
        }
    }
    Ok(env
        .services
        .iter()
        .filter(|s| seen.contains(&s.name))
        .map(|s| s.name.clone())
        .collect())
}

/// Who depends on each service (reverse edges).
pub fn dependents(env: &Environment) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for s in &env.services {
        for d in &s.dependencies {
            map.entry(d.clone()).or_default().push(s.name.clone());
        }
    }
    map
}
