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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::env;

    const DIAMOND: &str = "    - name: db
      command: run db
    - name: cache
      command: run cache
    - name: api
      command: run api
      dependencies: [db, cache]
    - name: web
      command: run web
      dependencies: [api]
    - name: lone
      command: run lone
";

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn closure_adds_dependencies_transitively_in_declaration_order() {
        let env = env(DIAMOND);
        assert_eq!(
            closure(&env, &names(&["web"])).unwrap(),
            names(&["db", "cache", "api", "web"])
        );
        assert_eq!(
            closure(&env, &names(&["cache"])).unwrap(),
            names(&["cache"])
        );
        assert_eq!(
            closure(&env, &[]).unwrap(),
            names(&["db", "cache", "api", "web", "lone"])
        );
    }

    #[test]
    fn closure_returns_the_unknown_names() {
        let env = env(DIAMOND);
        assert_eq!(
            closure(&env, &names(&["web", "nosuch"])).unwrap_err(),
            names(&["nosuch"])
        );
    }

    #[test]
    fn dependents_are_the_reverse_edges() {
        let env = env(DIAMOND);
        let d = dependents(&env);
        assert_eq!(d["db"], names(&["api"]));
        assert_eq!(d["cache"], names(&["api"]));
        assert_eq!(d["api"], names(&["web"]));
        assert!(!d.contains_key("web"));
        assert!(!d.contains_key("lone"));
    }
}
