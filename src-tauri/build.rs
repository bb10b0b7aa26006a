//! Reads the Tauri config at the repository root (by design, see shared/design.md).
fn main() {
    tauri_build::try_build(tauri_build::Attributes::new().config_path("../tauri.conf.json"))
        .expect("failed to run tauri-build");
}
