//! The shape of the code, checked: layers that only point down, and no cycles between
//! modules.
//!
//! The ring core (src/ring/) knows shared memory only: what it needs from the layers
//! above (a ring master, `tcp://` names) is installed into it through `ring::hooks`. The
//! library's own dependencies are what the C library needs, nothing a daemon or a tool
//! wants (those are daqflow-daemons' and daqflow-tools' packages). And within each
//! package no two modules reach into each other, directly or round a longer loop.

mod source_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use source_support::{ROOT, code, rust_files};

/// The module path of a file below `src` (`ring/consumer.rs` -> ["ring", "consumer"]).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("file below src");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

/// Every module path `crate::a::b...` or `super::x` names in `text`, resolved to an
/// absolute path (the leading identifiers only; the caller cuts them to a depth).
fn references(text: &str, me: &[String], is_mod_file: bool) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (start, prefix) in text.match_indices("crate::").chain(text.match_indices("super::")) {
        if start > 0 && text[..start].chars().next_back().is_some_and(ident) {
            continue;
        }
        let mut base = if prefix == "crate::" {
            Vec::new()
        } else {
            // `super` of a mod.rs is its directory's parent; of a file, its directory.
            let up = if is_mod_file { 2 } else { 1 };
            me[..me.len().saturating_sub(up)].to_vec()
        };
        let mut rest = &text[start + prefix.len()..];
        loop {
            let name: String = rest.chars().take_while(|&c| ident(c)).collect();
            if name.is_empty() {
                break;
            }
            rest = &rest[name.len()..];
            base.push(name);
            match rest.strip_prefix("::") {
                Some(more) => rest = more,
                None => break,
            }
        }
        // `a::{b, c::d}`: each first name of the group (nested groups are rare enough).
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name: String = item.trim().chars().take_while(|&c| ident(c)).collect();
                if !name.is_empty() && name != "self" {
                    found.push([base.clone(), vec![name]].concat());
                }
            }
        }
        found.push(base);
    }
    found
}

/// Edges between sibling modules at every level, of the package whose sources are `src`.
fn sibling_edges(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in files.iter().filter(|f| !f.starts_with(src.join("bin"))) {
        let me = module_of(src, file);
        let is_mod = file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        for target in references(&code(file), &me, is_mod) {
            // The first level where the two paths part: those two modules are siblings.
            let common = me.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < me.len() && common < target.len() {
                edges.entry(me[..=common].to_vec()).or_default().insert(target[..=common].to_vec());
            }
        }
    }
    edges
}

fn find_cycle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if !done.insert(node.clone()) {
            return None;
        }
        path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_ring_core_reaches_no_layer_above_it() {
    let core = Path::new(ROOT).join("src/ring");
    let mut files = Vec::new();
    rust_files(&core, &mut files);
    assert!(files.len() > 10, "no ring core at {}", core.display());
    let mut upward = Vec::new();
    for file in &files {
        let text = code(file);
        let src = Path::new(ROOT).join("src");
        let is_mod = file.file_name().is_some_and(|n| n == "mod.rs");
        for target in references(&text, &module_of(&src, file), is_mod) {
            let top = target.first().map(String::as_str).unwrap_or("");
            if !["ring", "error", "Error", "Result"].contains(&top) {
                upward.push(format!("{}: crate::{}", file.display(), target.join("::")));
            }
        }
        for word in ["daqflow_daemons", "daqflow_tools"] {
            if text.contains(word) {
                upward.push(format!("{}: {word}", file.display()));
            }
        }
    }
    assert!(upward.is_empty(), "the ring core reaches up:\n{}", upward.join("\n"));
}

#[test]
fn no_module_cycles_in_any_package() {
    for package in [".", "daemons", "tools"] {
        let src = Path::new(ROOT).join(package).join("src");
        let edges = sibling_edges(&src);
        assert!(!edges.is_empty(), "no module references found in {}", src.display());
        if let Some(cycle) = find_cycle(&edges) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!("modules of {package} in a cycle: {}", names.join(" -> "));
        }
    }
}

#[test]
fn the_library_depends_only_on_what_the_c_library_needs() {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).expect("read Cargo.toml");
    let section = manifest.split("\n[dependencies]\n").nth(1).expect("a [dependencies] section");
    let names: BTreeSet<&str> = section
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split(['=', '.', ' ']).next())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    let allowed: BTreeSet<&str> = ["libc", "memmap2", "nix", "parking_lot"].into();
    assert_eq!(names, allowed, "the library's dependencies changed: daemon or tool crates belong in their packages");
}
