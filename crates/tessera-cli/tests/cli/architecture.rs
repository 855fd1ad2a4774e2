//! The dependency rules of docs/ARCHITECTURE.md, checked against the workspace as it is:
//! the crate graph from `cargo metadata` and `cargo tree`, and the module graph of each
//! crate from its `use crate::…` paths. A rule broken here is a rule broken in the map.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Each workspace crate with the crates it declares, by kind (`normal`, `dev`, `build`).
fn declared_dependencies() -> BTreeMap<String, Vec<(String, String)>> {
    let metadata: Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps"])).unwrap();
    let mut crates = BTreeMap::new();
    for package in metadata["packages"].as_array().unwrap() {
        let deps = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let kind = d["kind"].as_str().unwrap_or("normal").to_owned();
                (d["name"].as_str().unwrap().to_owned(), kind)
            })
            .collect();
        crates.insert(package["name"].as_str().unwrap().to_owned(), deps);
    }
    crates
}

fn normal_dependencies<'a>(
    crates: &'a BTreeMap<String, Vec<(String, String)>>,
    name: &str,
) -> BTreeSet<&'a str> {
    crates
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not a workspace crate"))
        .iter()
        .filter(|(_, kind)| kind == "normal")
        .map(|(dep, _)| dep.as_str())
        .collect()
}

const WEB_CRATES: &[&str] = &["actix-web", "actix-http", "actix-cors", "awc", "hyper"];
const DATABASE_CRATES: &[&str] = &["sqlx", "libsqlite3-sys", "tokio-postgres"];
const NETWORK_CRATES: &[&str] = &["reqwest", "tokio", "hyper", "mio"];

#[test]
fn the_workspace_crates_depend_on_each_other_only_as_the_map_allows() {
    let crates = declared_dependencies();
    let tessera = |name: &str| -> BTreeSet<String> {
        normal_dependencies(&crates, name)
            .into_iter()
            .filter(|d| d.starts_with("tessera-"))
            .map(str::to_owned)
            .collect()
    };
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| (*n).to_owned()).collect() };

    // Invariant: tessera-core is the bottom of the graph.
    assert_eq!(tessera("tessera-core"), set(&[]));
    // Invariant: an API that has only a JWKS URL can use the guard.
    assert_eq!(tessera("tessera-guard"), set(&["tessera-core"]));
    // Invariant: the store knows the domain, nothing that serves HTTP.
    assert_eq!(tessera("tessera-store"), set(&["tessera-core"]));
    // Invariant: the shared HTTP plumbing depends on the domain and the store (for the
    // pool's metrics) only.
    assert_eq!(
        tessera("tessera-web"),
        set(&["tessera-core", "tessera-store"])
    );
    // Invariant: the two servers never import each other; they meet over HTTP and in the
    // store.
    assert!(!tessera("tessera-authz").contains("tessera-resource"));
    assert!(!tessera("tessera-resource").contains("tessera-authz"));
    // Invariant: only the binary puts the servers together, and nothing depends on it.
    for (name, deps) in &crates {
        assert!(
            !deps.iter().any(|(dep, _)| dep == "tessera-cli"),
            "{name} depends on tessera-cli"
        );
    }
}

#[test]
fn tessera_core_depends_on_no_web_framework_database_or_network_crate() {
    let crates = declared_dependencies();
    let core = normal_dependencies(&crates, "tessera-core");
    for banned in WEB_CRATES
        .iter()
        .chain(DATABASE_CRATES)
        .chain(NETWORK_CRATES)
    {
        assert!(!core.contains(banned), "tessera-core depends on {banned}");
    }
}

#[test]
fn the_store_depends_on_no_web_crate() {
    let crates = declared_dependencies();
    let store = normal_dependencies(&crates, "tessera-store");
    for banned in WEB_CRATES.iter().chain(&["reqwest"]) {
        assert!(!store.contains(banned), "tessera-store depends on {banned}");
    }
}

/// The packages `cargo tree` resolves for one crate alone, with `features`.
fn resolved_tree(package: &str, features: &[&str]) -> BTreeSet<String> {
    let mut args = vec![
        "tree",
        "-p",
        package,
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ];
    let joined = features.join(",");
    if !features.is_empty() {
        args.extend(["--features", &joined]);
    }
    cargo(&args)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_guard_builds_without_password_hashing_or_rsa_key_generation() {
    for features in [&[][..], &["test-issuer"][..]] {
        let tree = resolved_tree("tessera-guard", features);
        assert!(
            tree.contains("jsonwebtoken"),
            "the tree was not read: {tree:?}"
        );
        for banned in ["argon2", "rsa", "sqlx", "tessera-store", "tessera-web"] {
            assert!(
                !tree.contains(banned),
                "tessera-guard (features {features:?}) pulls in {banned}"
            );
        }
    }
}

/// The Rust files of a crate's library or binary, tests left out (files under a `tests`
/// folder, which reach their parent through `super::*`).
fn source_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                source_files(&path, files);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`src/grant/code.rs` → `grant`); `None`
/// for the crate root.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib" && name != "main").then_some(name)
}

/// The top-level modules named by the `crate::` paths in `text`, including those inside
/// `crate::{a, b::c}` groups.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        // `tessera_core::…` contains no `crate::`, but `some_crate::` would: only a path
        // that starts at `crate` counts.
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            for item in split_top_level(group) {
                let name = ident(&item);
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The comma-separated items of a `{…}` group (its opening brace already read), up to its
/// closing brace.
fn split_top_level(group: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut depth = 0usize;
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = items.last_mut() {
            last.push(c);
        }
    }
    items
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut done, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

/// Each crate's top-level modules and the other top-level modules they name.
fn module_graphs() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut graphs = BTreeMap::new();
    let crates_dir = workspace_root().join("crates");
    for entry in std::fs::read_dir(&crates_dir).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        source_files(&src, &mut files);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in files {
            let Some(module) = top_module(&src, &file) else {
                continue;
            };
            let text = std::fs::read_to_string(&file).unwrap();
            let uses = graph.entry(module.clone()).or_default();
            uses.extend(crate_paths(&text).into_iter().filter(|m| *m != module));
        }
        let name = src.parent().unwrap().file_name().unwrap();
        graphs.insert(name.to_string_lossy().into_owned(), graph);
    }
    graphs
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let graphs = module_graphs();
    assert!(graphs.contains_key("tessera-authz"), "{:?}", graphs.keys());
    let mut cycles = Vec::new();
    for (name, graph) in &graphs {
        // Names that are not modules (items re-exported at the crate root) end nowhere.
        let modules: BTreeSet<&String> = graph.keys().collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = graph
            .iter()
            .map(|(m, uses)| {
                let uses = uses.iter().filter(|u| modules.contains(u)).cloned();
                (m.clone(), uses.collect())
            })
            .collect();
        // Every cycle, not only the first: each is reported, then one of its edges is
        // taken out so the search goes on.
        while let Some(cycle) = find_cycle(&graph) {
            if let Some(uses) = graph.get_mut(&cycle[0]) {
                uses.remove(&cycle[1]);
            }
            cycles.push(format!("{name}: {}", cycle.join(" → ")));
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between modules:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_reads_grouped_paths() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("state", vec!["limits"]),
        ("limits", vec!["passwords"]),
        ("passwords", vec!["state"]),
        ("token", vec!["state"]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.to_owned(), uses.into_iter().map(str::to_owned).collect()))
    .collect();
    let cycle = find_cycle(&graph).unwrap();
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    let mut acyclic = graph.clone();
    acyclic.insert("passwords".to_owned(), BTreeSet::new());
    assert_eq!(find_cycle(&acyclic), None);

    let paths = crate_paths(
        "use crate::error::ApiError;\nuse crate::{keys::{KeyManager, to_utc}, state};\n\
         use tessera_core::Clock; let x = some_crate::y; crate::limits::check();",
    );
    let expected: BTreeSet<String> = ["error", "keys", "state", "limits"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(paths, expected);
}

#[test]
fn the_grant_engine_imports_no_web_framework() {
    let grant = workspace_root().join("crates/tessera-authz/src/grant");
    let mut files = Vec::new();
    source_files(&grant, &mut files);
    assert!(!files.is_empty(), "no grant engine at {}", grant.display());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for banned in ["actix_web", "actix_http", "HttpRequest", "HttpResponse"] {
            assert!(!text.contains(banned), "{} names {banned}", file.display());
        }
    }
}
