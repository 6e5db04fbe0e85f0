//! The code's shape, kept as it is: inside each crate, modules form no
//! cycle (a module uses only modules below it), and every type's inherent
//! `impl` blocks sit in the file that defines the type.

// The source-reading helpers below are test code outside `#[test]`
// functions, where clippy.toml's allowance does not reach.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose `src/` is checked.
const CRATES: [&str; 17] = [
    "discovery",
    "membership",
    "runtime",
    "replication",
    "registry",
    "pubsub",
    "cache",
    "supervisor",
    "pool",
    "jobs",
    "events",
    "drove",
    "admin",
    "dashboard",
    "apps/drove-cli",
    "apps/download-manager",
    "sim",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Each module file of a crate (not `lib.rs` or `main.rs`) and its text,
/// without its `#[cfg(test)]` module.
fn modules(krate: &str) -> BTreeMap<String, String> {
    let dir = root().join(krate).join("src");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.extension().is_none_or(|e| e != "rs") || name == "lib" || name == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let text = match text.find("#[cfg(test)]") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        out.insert(name, text);
    }
    out
}

/// The modules of the same crate that `text` names as `crate::<module>`.
fn uses(text: &str, modules: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if modules.contains(name.as_str()) {
            out.insert(name);
        }
    }
    // `use crate::{a, b::C}` names modules inside braces.
    for (i, _) in text.match_indices("crate::{") {
        let rest = &text[i + "crate::{".len()..];
        let inner = &rest[..rest.find('}').unwrap_or(rest.len())];
        for part in inner.split(',') {
            let name = part.trim().split("::").next().unwrap_or("").trim();
            if modules.contains(name) {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// A cycle in `graph`, if any, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if next != node {
                if let Some(c) = visit(next, graph, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_crate_has_a_module_cycle() {
    for krate in CRATES {
        let modules = modules(krate);
        let names: BTreeSet<&str> = modules.keys().map(String::as_str).collect();
        let graph: BTreeMap<String, BTreeSet<String>> = modules
            .iter()
            .map(|(m, text)| (m.clone(), uses(text, &names)))
            .collect();
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "{krate}: modules use each other in a cycle: {}",
                cycle.join(" -> ")
            );
        }
    }
}

/// The types a file defines (`struct`, `enum`), by name.
fn defined(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line
            .strip_prefix("pub(crate) ")
            .or_else(|| line.strip_prefix("pub "))
            .unwrap_or(line);
        for kw in ["struct ", "enum "] {
            if let Some(rest) = line.strip_prefix(kw) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        }
    }
    out
}

/// The types a file has inherent `impl` blocks for (not `impl Trait for`).
fn implemented(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("impl") else {
            continue;
        };
        if line.contains(" for ") || !line.trim_end().ends_with('{') {
            continue;
        }
        // Skip the generics of the impl itself: `impl<A: Actor> Name<A> {`.
        let rest = if rest.starts_with('<') {
            let mut depth = 0;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '<' => depth += 1,
                    '>' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            &rest[end..]
        } else {
            rest
        };
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

#[test]
fn each_type_has_its_impl_blocks_in_the_file_that_defines_it() {
    for krate in CRATES {
        let modules = modules(krate);
        for (module, text) in &modules {
            let own = defined(text);
            for ty in implemented(text) {
                if own.contains(&ty) {
                    continue;
                }
                let home = modules
                    .iter()
                    .find(|(_, t)| defined(t).contains(&ty))
                    .map(|(m, _)| m.clone());
                if let Some(home) = home {
                    panic!("{krate}: `impl {ty}` in {module}.rs, but {ty} is defined in {home}.rs");
                }
            }
        }
    }
}

#[test]
fn the_checks_catch_what_they_look_for() {
    let names: BTreeSet<&str> = ["a", "b", "c"].into_iter().collect();
    assert_eq!(
        uses("use crate::a::X;\nuse crate::{b, c::Y};", &names),
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert!(find_cycle(&graph).is_some());
    assert_eq!(
        implemented("impl<A: Actor> Shell<A> {\nimpl Actor for X {\nimpl Node {"),
        ["Shell", "Node"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(
        defined("pub struct Node {\nenum Work {\npub(crate) struct Runner;"),
        ["Node", "Work", "Runner"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}
