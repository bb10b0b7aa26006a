#!/usr/bin/env bash
# The desktop app's CI steps: system packages (if missing), UI build and unit tests
# (vitest), the app's Rust tests (mock runtime, real engine), the app build, and the
# end-to-end test on the real window under Xvfb through WebKitWebDriver.
# Screenshots of each main screen land in target/e2e-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=never NO_COLOR=1
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0))s] $*"; }

stamp "set-up (Debian packages, npm packages)"
bash scripts/setup.sh
stamp "ui build"   # before cargo: ui/dist is embedded at compile time
(cd ui && npm run --silent build)
stamp "vitest"
(cd ui && npx vitest run)
stamp "cargo test -p tideline-app (mock runtime)"
cargo test -p tideline-app --locked
stamp "cargo test -p tideline-engine --test service"
cargo test -p tideline-engine --locked --test service
stamp "cargo build -p tideline-app"
cargo build -p tideline-app --locked
stamp "e2e (Xvfb + WebKitWebDriver)"
rm -rf target/e2e-screenshots
timeout 300 dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" \
  python3 tests/e2e/app_e2e.py target/debug/tideline-app target/e2e-screenshots
# print nothing after this: the last line is the plain closing line "e2e: N passed, N failed"
