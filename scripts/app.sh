#!/usr/bin/env bash
# Starts the Tideline desktop app: installs what it needs if missing (scripts/setup.sh:
# Debian packages, the UI's npm packages), builds the UI, then builds and runs the app.
# Extra arguments go to the app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
(cd ui && npm run --silent build)
exec cargo run --locked -p tideline-app -- "$@"
