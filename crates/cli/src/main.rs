//! The `tideline` command (being written).
fn main() {}
