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

# Build: Tauri's Linux libraries. Run: Xvfb, a session bus, WebKitWebDriver.
PKGS="build-essential pkg-config file libwebkit2gtk-4.1-dev libgtk-3-dev
      libayatana-appindicator3-dev librsvg2-dev libssl-dev libxdo-dev
      xvfb xauth dbus webkit2gtk-driver"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  stamp "apt-get install$missing"
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

stamp "npm ci"
(cd ui && npm ci --no-audit --no-fund --loglevel=error)
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
