#!/usr/bin/env bash
# Fleet figures (docs/directories.md): one `dir:` entry (watch: true) of N idle
# databases of 20 rows on a folder replica, replicated by BIN (tideline or
# litestream: same flags); prints the time until every database's first L0 file is in
# the replica, then, after SETTLE seconds, the process's CPU over MEASURE seconds, its
# RSS, peak RSS, threads and open files (Linux /proc), and the ERROR lines of its log.
# With ADDR=127.0.0.1:PORT the config serves metrics there (addr:), and one scrape
# at the end prints its time, size and series.
# Usage: bash scripts/fleet.sh BIN N SETTLE MEASURE
#   e.g. bash scripts/fleet.sh target/release/tideline 1000 80 60
set -u
BIN=$1; N=$2; SETTLE=$3; MEASURE=$4; ADDR=${ADDR:-}
W=$(mktemp -d)
python3 - "$W" "$N" <<'PY'
import sqlite3, sys, os
w, n = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{w}/data")
for i in range(n):
    c = sqlite3.connect(f"{w}/data/t{i:05}.db")
    c.execute("pragma journal_mode=wal")
    c.execute("create table t(id integer primary key, v text)")
    c.executemany("insert into t(v) values (?)", [("x"*100,)]*20)
    c.commit(); c.close()
PY
[ -n "$ADDR" ] && echo "addr: \"$ADDR\"" > $W/cfg.yml
cat >> $W/cfg.yml <<Y
dbs:
  - dir: $W/data
    pattern: "*.db"
    watch: true
    replica:
      type: file
      path: $W/replica
Y
T0=$(date +%s.%N)
$BIN replicate -config $W/cfg.yml > $W/log 2>&1 &
PID=$!
# started: every database's replica has an L0 file
for i in $(seq 1 600); do
  k=$(find $W/replica -name '*.ltx' -path '*/0/*' 2>/dev/null | sed 's#/ltx/.*##' | sort -u | wc -l)
  [ "$k" -ge "$N" ] && break; sleep 1
done
T1=$(date +%s.%N)
sleep $SETTLE
cpu0=$(awk '{print $14+$15}' /proc/$PID/stat)
sleep $MEASURE
cpu1=$(awk '{print $14+$15}' /proc/$PID/stat)
hz=$(getconf CLK_TCK)
echo "bin=$(basename $BIN) n=$N synced=$k startup_s=$(echo "$T1-$T0"|bc) idle_cpu_pct=$(echo "scale=2;($cpu1-$cpu0)*100/$hz/$MEASURE"|bc) rss_mb=$(awk '/VmRSS/{print $2/1024}' /proc/$PID/status) hwm_mb=$(awk '/VmHWM/{print $2/1024}' /proc/$PID/status) threads=$(ls /proc/$PID/task|wc -l) fds=$(ls /proc/$PID/fd|wc -l)"
if [ -n "$ADDR" ]; then
  curl -s -o $W/metrics -w "scrape_s=%{time_total} scrape_bytes=%{size_download} " http://$ADDR/metrics
  echo "series=$(grep -vc '^#' $W/metrics) rss_after_scrape_mb=$(awk '/VmRSS/{print $2/1024}' /proc/$PID/status)"
fi
kill -TERM $PID; wait $PID
grep -c ERROR $W/log
grep ERROR $W/log | cut -c30-200 | sed -E 's#$W##g; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -5
rm -rf $W
