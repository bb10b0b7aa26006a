//! Reads the Tauri config at the repository root (by design, see shared/design.md).
//!
//! The UI is embedded at compile time from `ui/dist`, which `npm run build` in `ui/`
//! writes (scripts/app.sh and scripts/test-app.sh do). So that `cargo build` and
//! `cargo test --workspace` also work where the UI was not built (e.g. the engine's
//! CI), a one-page placeholder saying how to build it is written there when it is
//! missing; a real UI build replaces it.
use std::path::Path;

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist");
    let index = dist.join("index.html");
    if !index.exists() {
        std::fs::create_dir_all(&dist).expect("create ui/dist");
        std::fs::write(
            &index,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tideline</title></head>\
             <body><h1>Tideline</h1><p>The user interface was not built. Run <code>scripts/app.sh</code>, \
             or <code>npm ci &amp;&amp; npm run build</code> in <code>ui/</code>, then build the app again.</p></body></html>\n",
        )
        .expect("write the ui/dist placeholder");
    }
    println!("cargo:rerun-if-changed=../ui/dist/index.html");
    tauri_build::try_build(tauri_build::Attributes::new().config_path("../tauri.conf.json"))
        .expect("failed to run tauri-build");
}
