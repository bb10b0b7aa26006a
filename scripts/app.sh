#!/usr/bin/env bash
# Builds the UI and starts the Tideline desktop app (debug build).
# Needs the system packages that scripts/test-app.sh installs, and Node.js 20+.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d ui/node_modules ]; then
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd ui && npm run --silent build)
exec cargo run -p tideline-app "$@"
