#!/usr/bin/env bash
# Demo of the main job: `tideline replicate` on a live SQLite database, then
# `tideline restore` from the replica, checked against the original.
# Usage: bash scripts/demo.sh [DIR]     (files are kept in DIR, default a temp dir)
# TIDELINE_BIN=PATH uses that binary instead of building a release one (the test suite
# passes the debug binary its tests already built).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$(mktemp -d)}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

if [[ -n "${TIDELINE_BIN:-}" ]]; then
  tideline="$TIDELINE_BIN"
else
  echo "==> building tideline"
  cargo build --release --locked -q -p tideline-cli --manifest-path "$root/Cargo.toml"
  tideline="$root/target/release/tideline"
fi

db="$dir/notes.db"
replica="$dir/replica"
rm -rf "$db" "$db-wal" "$db-shm" "$dir/.notes.db-litestream" "$replica" "$dir/restored.db"

echo "==> creating $db"
python3 - "$db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("pragma journal_mode=wal")
c.execute("create table notes(id integer primary key, body text, at text default current_timestamp)")
c.executemany("insert into notes(body) values (?)", [(f"note {i}",) for i in range(1000)])
c.commit()
PY

echo "==> tideline replicate $db file://$replica   (running in the background)"
"$tideline" replicate "$db" "file://$replica" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT

echo "==> the application writes 20 transactions, one every 250 ms"
python3 - "$db" <<'PY'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=10)
for i in range(20):
    c.execute("insert into notes(body) values (?)", (f"written while replicating {i}",))
    c.commit()
    time.sleep(0.25)
PY

echo "==> stopping tideline (SIGTERM: it ships what is pending first)"
kill -TERM "$pid"
wait "$pid" || true
trap - EXIT

echo "==> tideline ltx -level all file://$replica"
"$tideline" ltx -level all "file://$replica"

echo "==> tideline restore -o $dir/restored.db -integrity-check full file://$replica"
"$tideline" restore -o "$dir/restored.db" -integrity-check full "file://$replica"

python3 - "$db" "$dir/restored.db" <<'PY'
import sqlite3, sys
q = "select count(*), max(id) from notes"
a = sqlite3.connect(sys.argv[1]).execute(q).fetchone()
b = sqlite3.connect(sys.argv[2]).execute(q).fetchone()
print(f"original: {a[0]} notes, restored: {b[0]} notes")
sys.exit(0 if a == b else "restored database differs from the original")
PY
echo "==> done; files are in $dir"
