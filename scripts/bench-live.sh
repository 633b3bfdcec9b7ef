#!/usr/bin/env bash
# End-to-end rows/s with live-state tracking on (default) and off
# (--no-live), alternating on one machine, median of each and their ratio:
#   scripts/bench-live.sh [runs (3)] [seconds per run (15)]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-3}; secs=${2:-15}
port=${BENCH_PORT:-18081}
adit=$PWD/target/release/adit
out=target/bench; mkdir -p "$out"
cargo build --release --quiet
scripts/pg.sh start >&2
admin_url=$(scripts/pg.sh url); base=${admin_url%/*}
pid=
stop() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; pid=; }
trap stop EXIT
one() { # mode (live|nolive) -> rows/s
    local db=adit_bench_live_$1
    psql "$admin_url" -qAtX -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
    local extra=(); [ "$1" = nolive ] && extra=(--no-live)
    DATABASE_URL=$base/$db RUST_LOG=warn "$adit" serve --listen "127.0.0.1:$port" \
        --rate-limit-per-key 0 "${extra[@]}" 2>>"$out/serve-live.log" & pid=$!
    for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
    DATABASE_URL=$base/$db "$adit" load --url "http://127.0.0.1:$port" --create-sites 8 --rows 1000 \
        --concurrency 16 --duration 3s --quiet >/dev/null 2>&1
    DATABASE_URL=$base/$db "$adit" load --url "http://127.0.0.1:$port" --create-sites 8 --rows 1000 \
        --concurrency 16 --duration "${secs}s" --verify --quiet --json-report "$out/live-$1.json" >/dev/null 2>&1
    stop
    psql "$admin_url" -qAtX -c "DROP DATABASE $db" >/dev/null
    python3 -c "import json; print(round(json.load(open('$out/live-$1.json'))['rows_per_s']))"
}
on=(); off=()
for i in $(seq "$runs"); do
    a=$(one live); b=$(one nolive)
    echo "run $i: live on $a rows/s, off $b rows/s" >&2
    on+=("$a"); off+=("$b")
done
python3 - "${on[*]}" "${off[*]}" <<'PY'
import statistics, sys
on = [int(x) for x in sys.argv[1].split()]; off = [int(x) for x in sys.argv[2].split()]
m_on, m_off = statistics.median(on), statistics.median(off)
print(f"live tracking on: median {m_on:,.0f} rows/s {on}; off: median {m_off:,.0f} rows/s {off}; "
      f"ratio {m_on / m_off:.3f}")
PY
