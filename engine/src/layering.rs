//! Keeps the layering `docs/architecture.md` describes, in both crates: every module path a
//! file names (`crate::…`, `super::…`, a child module's `name::…`) is an edge; the edges form
//! no circle, run only downwards between the top-level modules, and only `cli/` knows clap.
//! Test code (after `#[cfg(test)]`) is left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The engine's top-level modules, top first: a module may use only those of a lower rank.
const ENGINE: &[(&str, u8)] = &[
    ("cli", 7),
    ("ops", 6),
    ("sync", 5),
    ("diff", 4),
    ("plan", 3),
    ("project", 2),
    ("state", 2),
    ("settings", 1),
    ("storage", 1),
    ("error", 0),
];

/// The connectors' top-level modules, top first.
const CONNECTORS: &[(&str, u8)] = &[
    ("registry", 6),
    ("zuora", 5),
    ("zuora_file", 5),
    ("zuora_revenue", 5),
    ("zuora_common", 4),
    ("destination", 3),
    ("error", 2),
    ("http", 1),
    ("rules", 1),
    ("failpoint", 0),
    ("ids", 0),
];

/// Module path (`sync::commit`; the crate root is empty) → the file's source before its tests.
fn modules(root: &Path) -> BTreeMap<Vec<String>, String> {
    let mut found = BTreeMap::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
        for entry in entries {
            let path: PathBuf = entry.expect("a directory entry").path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(root).expect("under the root").with_extension("");
            let mut module: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            if module == ["layering"] {
                continue; // this test, compiled only for tests
            }
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: String = code
                .lines()
                .map(|line| line.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            found.insert(module, code);
        }
    }
    found
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths that follow each `prefix` in `code`, one level of `{a, b::c}` groups expanded.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        if code[..at].chars().next_back().is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        let end = rest.find(|c: char| !(is_ident(c) || c == ':')).unwrap_or(rest.len());
        let head: Vec<String> = rest[..end]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
            let group = &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |i| end + i)];
            for item in group.split(',') {
                let tail = item
                    .trim()
                    .split("::")
                    .filter(|s| !s.is_empty() && s.chars().all(is_ident));
                paths.push(head.iter().cloned().chain(tail.map(String::from)).collect());
            }
        } else {
            paths.push(head);
        }
    }
    paths
}

/// Each module's edges to the other modules it names.
fn edges(modules: &BTreeMap<Vec<String>, String>) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut edges = BTreeMap::new();
    for (module, code) in modules {
        let mut named = Vec::new();
        named.extend(paths_after(code, "crate::"));
        let parent = module[..module.len().saturating_sub(1)].to_vec();
        for path in paths_after(code, "super::") {
            named.push(parent.iter().cloned().chain(path).collect());
        }
        for line in code.lines() {
            let line = line.trim();
            let declared = ["mod ", "pub mod ", "pub(crate) mod ", "pub(super) mod "]
                .iter()
                .find_map(|p| line.strip_prefix(p)?.strip_suffix(';'));
            if let Some(child) = declared {
                for path in paths_after(code, &format!("{child}::")) {
                    named.push(module.iter().cloned().chain([child.to_string()]).chain(path).collect());
                }
            }
        }
        let mut targets = BTreeSet::new();
        for path in named {
            // The longest prefix of the path that is a module file, other than this one.
            if let Some(target) = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains_key(p))
                && &target != module
            {
                targets.insert(target);
            }
        }
        edges.insert(module.clone(), targets);
    }
    edges
}

/// A circle of modules, if there is one.
fn circle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        done: &mut BTreeSet<Vec<String>>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(start) = stack.iter().position(|n| n == node) {
            return Some(stack[start..].iter().chain([node]).map(|m| m.join("::")).collect());
        }
        if !done.insert(node.clone()) {
            return None;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, done, stack) {
                return Some(found);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
}

/// Edges between top-level modules that do not run downwards.
fn upward(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>, ranks: &[(&str, u8)]) -> Vec<String> {
    let rank = |module: &[String]| {
        let top = module.first().map(String::as_str).unwrap_or_default();
        ranks.iter().find(|(name, _)| *name == top).map(|(_, r)| *r)
    };
    let mut wrong = Vec::new();
    for (from, targets) in edges {
        let Some(from_rank) = rank(from) else { continue };
        for to in targets {
            let same_top = from.first() == to.first();
            match rank(to) {
                _ if same_top => {}
                Some(to_rank) if to_rank < from_rank => {}
                _ => wrong.push(format!("{} -> {}", from.join("::"), to.join("::"))),
            }
        }
    }
    wrong
}

fn check(crate_src: &Path, ranks: &[(&str, u8)]) {
    let modules = modules(crate_src);
    let edges = edges(&modules);
    assert!(edges.len() > 10, "read the modules of {}", crate_src.display());
    if let Some(circle) = circle(&edges) {
        panic!("modules use each other in a circle: {}", circle.join(" -> "));
    }
    for module in modules.keys() {
        let top = module.first().map(String::as_str).unwrap_or_default();
        assert!(
            module.len() <= 1 && top.is_empty() || ranks.iter().any(|(name, _)| *name == top) || top == "main",
            "top-level module `{top}` has no place in the layering"
        );
    }
    let wrong = upward(&edges, ranks);
    assert!(
        wrong.is_empty(),
        "dependencies against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn engine_modules_depend_downwards_without_circles() {
    check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), ENGINE);
}

#[test]
fn connector_modules_depend_downwards_without_circles() {
    check(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/src"),
        CONNECTORS,
    );
}

#[test]
fn only_the_cli_knows_clap() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (module, code) in modules(&src) {
        let top = module.first().map(String::as_str).unwrap_or_default();
        if top == "cli" || top == "main" {
            continue;
        }
        assert!(!code.contains("clap"), "`{}` uses clap", module.join("::"));
    }
}

/// What `cli/` may name: it parses arguments into the library's operations and renders what
/// they return, so the work of a command lives below it.
const CLI_MAY_USE: &[&str] = &["cli", "ops", "error", "settings"];

#[test]
fn the_cli_uses_only_the_operations() {
    let modules = modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let edges = edges(&modules);
    let mut wrong = Vec::new();
    for (from, targets) in &edges {
        if from.first().map(String::as_str) != Some("cli") {
            continue;
        }
        for to in targets {
            let top = to.first().map(String::as_str).unwrap_or_default();
            if !CLI_MAY_USE.contains(&top) {
                wrong.push(format!("{} -> {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cli/ reaches past the operations (give `ops` what it needs):\n{}",
        wrong.join("\n")
    );
    let from_below: Vec<String> = edges
        .iter()
        .filter(|(from, _)| !matches!(from.first().map(String::as_str), Some("cli" | "main") | None))
        .flat_map(|(from, targets)| targets.iter().map(move |to| (from, to)))
        .filter(|(_, to)| to.first().map(String::as_str) == Some("cli"))
        .map(|(from, to)| format!("{} -> {}", from.join("::"), to.join("::")))
        .collect();
    assert!(
        from_below.is_empty(),
        "the library depends on cli/:\n{}",
        from_below.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle_and_an_upward_edge() {
    let mut modules = BTreeMap::new();
    let path = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    modules.insert(path("state::store"), "use crate::sync::run::x;".to_string());
    modules.insert(path("sync::run"), "use crate::state::{store::Y, lock};".to_string());
    modules.insert(path("state::lock"), String::new());
    let edges = edges(&modules);
    assert!(edges[&path("sync::run")].contains(&path("state::lock")));
    assert!(circle(&edges).is_some());
    assert_eq!(upward(&edges, ENGINE), vec!["state::store -> sync::run"]);
}
