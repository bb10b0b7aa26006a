//! The architecture, checked on the source:
//!
//! * the front ends (the `tideline` command and the desktop app) use the engine through
//!   its facade only: the items `crates/engine/src/lib.rs` re-exports, and the config
//!   crate it re-exports as `config`. A path into one of the engine's component
//!   modules from a front end means a policy is being written again at the edge; give
//!   the engine a function instead;
//! * the engine's components are layered in the order the data flows, each using only
//!   the ones below it and the shared vocabulary (errors, events, the clock), so there
//!   is no import cycle among them.

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

/// The engine's components, lowest first: each may use those before it.
const LAYERS: &[&str] = &[
    "storage",
    "capture",
    "levels",
    "restore",
    "replicate",
    "service",
];

/// What every component may use: the crate's vocabulary and small leaf modules.
const SHARED: &[&str] = &[
    "error",
    "events",
    "clock",
    "time",
    "blocking",
    "failpoint",
    "metrics",
    "serve",
    "config",
    "Error",
    "Result",
    "ErrorCode",
];

/// The component error types `error.rs` wraps into the crate's `Error` (it names no
/// other part of a component).
const WRAPPED_ERRORS: &[&str] = &[
    "storage::ReplicaError",
    "storage::S3Failure",
    "storage::RemoteFailure",
    "restore::PlanError",
    "levels::compaction::CompactionError",
];

/// The `crate::…` paths a source file names outside comments and its tests.
fn crate_paths(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.trim_end_matches(':').to_owned());
        }
    }
    out
}

#[test]
fn engine_components_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/engine/src");
    let mut problems = Vec::new();
    for (rank, component) in LAYERS.iter().enumerate() {
        let mut files = Vec::new();
        rust_files(&src.join(component), &mut files);
        assert!(!files.is_empty(), "no files in {component}/");
        for f in &files {
            for path in crate_paths(&std::fs::read_to_string(f).unwrap()) {
                let top = path.split("::").next().unwrap_or_default();
                let allowed =
                    SHARED.contains(&top) || top == *component || LAYERS[..rank].contains(&top);
                if !allowed {
                    problems.push(format!("{}: crate::{path}", f.display()));
                }
            }
        }
    }
    for leaf in [
        "error.rs",
        "events.rs",
        "clock.rs",
        "time.rs",
        "blocking.rs",
        "failpoint.rs",
        "metrics/mod.rs",
        "metrics/http.rs",
        "serve.rs",
    ] {
        let text = std::fs::read_to_string(src.join(leaf)).unwrap();
        for path in crate_paths(&text) {
            let top = path.split("::").next().unwrap_or_default();
            if !SHARED.contains(&top) && !WRAPPED_ERRORS.contains(&path.as_str()) {
                problems.push(format!("{leaf}: crate::{path}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "engine modules reach up or sideways (layers, lowest first: {LAYERS:?}):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_layer_check_reads_paths() {
    let text = "use crate::storage::{FileInfo};\n// crate::service in a comment\nfn f() -> crate::Result<()> {}\n#[cfg(test)]\nuse crate::replicate;";
    assert_eq!(crate_paths(text), ["storage", "Result"]);
}
