//! The front ends (the `tideline` command and the desktop app) use the engine through
//! its facade only: the items `crates/engine/src/lib.rs` re-exports, and the config
//! crate it re-exports as `config`. A path into one of the engine's component modules
//! from a front end means a policy is being written again at the edge; give the engine
//! a function instead.

use std::path::{Path, PathBuf};

/// The engine's component modules, which front ends must not name.
const COMPONENTS: &[&str] = &[
    "capture",
    "storage",
    "levels",
    "restore",
    "replicate",
    "service",
    "events",
    "time",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `tideline_engine::<component>::` occurrences in a source text, as (line, text).
fn component_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("tideline_engine::") {
            rest = &rest[at + "tideline_engine::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if COMPONENTS.contains(&name.as_str()) && rest[name.len()..].starts_with("::") {
                found.push((i + 1, line.trim().to_owned()));
            }
        }
    }
    found
}

#[test]
fn the_detector_finds_component_paths() {
    assert_eq!(
        component_paths("use tideline_engine::storage::open_client;").len(),
        1
    );
    assert!(component_paths("use tideline_engine::{open_client, config::Config};").is_empty());
    assert!(component_paths("let x = tideline_engine::storage_kind;").is_empty());
}

#[test]
fn front_ends_use_only_the_facade() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["crates/cli/src", "src-tauri/src", "crates/bench/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {files:?}");
    let mut offenders = Vec::new();
    for f in &files {
        for (line, text) in component_paths(&std::fs::read_to_string(f).unwrap()) {
            offenders.push(format!("{}:{line}: {text}", f.display()));
        }
    }
    assert!(
        offenders.is_empty(),
        "front ends reach past the engine's facade (add what they need to crates/engine/src/lib.rs):\n{}",
        offenders.join("\n")
    );
}
