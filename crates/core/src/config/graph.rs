//! The dependency graph must be a DAG over unique names: the engine starts services in
//! topological order, so every broken edge is reported here, before anything starts.

use std::collections::HashMap;

use super::check::Checker;
use super::model::Service;
use super::suggest;

/// `services` pairs each service with its index in `spec.services` (for locations).
pub(crate) fn check(c: &mut Checker<'_>, services: &[(usize, Service)]) {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (pos, (index, s)) in services.iter().enumerate() {
        match by_name.get(s.name.as_str()) {
            Some(&first) => {
                let (first_index, _) = services[first];
                let first_at = c
                    .index
                    .origin(&format!("spec.services[{first_index}].name"))
                    .clone();
                c.error(
                    &format!("spec.services[{index}].name"),
                    format!(
                        "duplicate service name `{}`: spec.services[{first_index}] (at {first_at}) and spec.services[{index}] are both named `{}`",
                        s.name, s.name
                    ),
                    Some("service names must be unique; rename one of them".into()),
                );
            }
            None => {
                by_name.insert(&s.name, pos);
            }
        }
    }

    // Edges that are sound enough to walk for cycles.
    let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); services.len()];
    for (pos, (index, s)) in services.iter().enumerate() {
        for (k, dep) in s.dependencies.iter().enumerate() {
            let path = dependency_path(c, *index, k, dep);
            if *dep == s.name {
                c.error(
                    &path,
                    format!("service `{}` depends on itself", s.name),
                    Some(format!("remove `{dep}` from its dependencies")),
                );
                continue;
            }
            match by_name.get(dep.as_str()) {
                Some(&target) => edges[pos].push((target, k)),
                None => {
                    let names = services
                        .iter()
                        .map(|(_, s)| s.name.as_str())
                        .filter(|n| *n != s.name);
                    let hint = suggest::did_you_mean(dep, names, "services in this environment");
                    c.error(
                        &path,
                        format!("service `{}` depends on `{dep}`, which is not a service in this environment", s.name),
                        Some(hint),
                    );
                }
            }
        }
    }
    for (from, dep_index, cycle) in cycles(&edges) {
        let names: Vec<&str> = cycle.iter().map(|&p| services[p].1.name.as_str()).collect();
        let index = services[from].0;
        let dep = &services[from].1.dependencies[dep_index];
        c.error(
            &dependency_path(c, index, dep_index, dep),
            format!("dependency cycle: {}", names.join(" -> ")),
            Some("services must not depend on each other in a loop; remove one of these dependencies".into()),
        );
    }
}

/// The key path of a service's `k`th dependency: `dependencies[k]` in the list form,
/// `dependencies.NAME` in the mapping form.
fn dependency_path(c: &Checker<'_>, index: usize, k: usize, dep: &str) -> String {
    let mapped = format!("spec.services[{index}].dependencies.{dep}");
    if c.index.has(&mapped) {
        mapped
    } else {
        format!("spec.services[{index}].dependencies[{k}]")
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    New,
    OnStack,
    Done,
}

/// Depth-first search in declaration order. Each back edge closes one cycle, reported as
/// (service closing it, its dependency index, path from the first service back to itself).
fn cycles(edges: &[Vec<(usize, usize)>]) -> Vec<(usize, usize, Vec<usize>)> {
    fn visit(
        node: usize,
        edges: &[Vec<(usize, usize)>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        found: &mut Vec<(usize, usize, Vec<usize>)>,
    ) {
        marks[node] = Mark::OnStack;
        stack.push(node);
        for &(next, dep_index) in &edges[node] {
            match marks[next] {
                Mark::New => visit(next, edges, marks, stack, found),
                Mark::OnStack => {
                    let start = stack.iter().position(|&n| n == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next);
                    found.push((node, dep_index, cycle));
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[node] = Mark::Done;
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut found = Vec::new();
    for start in 0..edges.len() {
        if marks[start] == Mark::New {
            visit(start, edges, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::cycles;

    #[test]
    fn finds_the_cycle_path() {
        // 0 -> 1 -> 2 -> 0, and 3 -> 0 (not part of it)
        let edges = vec![vec![(1, 0)], vec![(2, 0)], vec![(0, 1)], vec![(0, 0)]];
        assert_eq!(cycles(&edges), vec![(2, 1, vec![0, 1, 2, 0])]);
        assert!(cycles(&[vec![(1, 0)], vec![]]).is_empty());
    }
}
