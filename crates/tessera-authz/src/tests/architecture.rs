//! The crate's own shape, read from its source: the grant engine imports no web framework,
//! and no module imports another that imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            found.push((path, text));
        }
    }
    found
}

#[test]
fn the_grant_engine_imports_no_web_framework() {
    let files = sources(&src().join("grant"));
    assert!(
        files.len() > 5,
        "the grant engine's files are where expected"
    );
    for (path, text) in files {
        for framework in ["actix_web", "actix_http", "actix-web", "actix-http"] {
            assert!(
                !text.contains(framework),
                "{} names {framework}",
                path.display()
            );
        }
    }
}

/// The crate's modules: each top-level file, and each directory as one module (its tests
/// left out: they may use anything).
fn modules() -> BTreeMap<String, String> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if name == "lib" || name == "tests" {
            continue;
        }
        let text = if path.is_dir() {
            sources(&path)
                .into_iter()
                .filter(|(file, _)| !file.components().any(|c| c.as_os_str() == "tests"))
                .map(|(_, text)| text)
                .collect()
        } else {
            std::fs::read_to_string(&path).unwrap()
        };
        modules.insert(name.to_owned(), text);
    }
    modules
}

/// The modules `text` names as `crate::name`, alone or in a `crate::{…}` group.
fn imports(text: &str, modules: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let paths: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .collect(),
            None => vec![rest],
        };
        for path in paths {
            let first: String = path
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if modules.contains_key(&first) {
                named.insert(first);
            }
        }
    }
    named
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let modules = modules();
    let graph: BTreeMap<&str, BTreeSet<String>> = modules
        .iter()
        .map(|(name, text)| {
            let mut named = imports(text, &modules);
            named.remove(name);
            (name.as_str(), named)
        })
        .collect();
    assert!(graph["state"].contains("grant"), "the scan sees imports");
    // Depth-first search for a path back to the start, from every module.
    for start in graph.keys() {
        let mut stack: Vec<Vec<&str>> = vec![vec![start]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path[path.len() - 1];
            for next in &graph[last] {
                assert!(
                    next != start,
                    "module cycle: {} -> {start}",
                    path.join(" -> ")
                );
                if seen.insert(next.as_str()) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
    }
}
