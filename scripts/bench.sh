#!/usr/bin/env bash
# make bench: adit against its limits, all in one run on one machine.
#   (a) raw limit: psql \copy (FORMAT binary) of the same rows into the same
#       table, 1 and 2 parallel streams, best taken; the rows are rounds of
#       the same fleet, as (b) sends them (2 streams: half the sites each)
#   (b) adit end to end at max throughput (closed model) + ratio to (a)
#   (c) front door alone (writer in discard mode)
#   (d) p50/p99 at half of (b)'s rate (open model); every upload's start
#       and latency in target/bench/half-trace.csv, to see when the slow
#       ones happened (scripts/stalls.py lines them up with the writer's
#       flushes, which the server logs to target/bench/serve.log)
#   (e) peak RSS of adit: in (b)+(d), and under (g)
#   (g) overload: open model at 3x (b)'s rate, no client retries; what is
#       acknowledged is verified, the rest is shed with 503
#   (h) the edge collector: polling cycles of 5,000 simulated miners
#       (adit-minersim) on one core, a healthy farm and one with dead, slow
#       and malformed miners; cycle time and the collector's CPU per cycle
#   (f) criterion figures
# Prints one table and writes target/bench/latest.json.
# Knobs (environment): BENCH_RAW_ROWS, BENCH_SECONDS, BENCH_CONCURRENCY,
# BENCH_SITES, BENCH_ROWS_PER_UPLOAD, BENCH_SKIP_CRITERION=1,
# BENCH_MINERS (5000), BENCH_MINER_PORT (20000: the farm's first port, below
# the ephemeral range so no outgoing connection holds one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

RAW_ROWS=${BENCH_RAW_ROWS:-1000000}
SECONDS_RUN=${BENCH_SECONDS:-20}
CONCURRENCY=${BENCH_CONCURRENCY:-16}
SITES=${BENCH_SITES:-8}
ROWS_PER_UPLOAD=${BENCH_ROWS_PER_UPLOAD:-1000}
PORT=${BENCH_PORT:-18080}
out=target/bench
mkdir -p "$out"
: >"$out/serve.log" # this run's server log only
adit=$root/target/release/adit

export PGOPTIONS='-c client_min_messages=warning'
say() { printf '\n== %s\n' "$*" >&2; }
now() { date +%s.%N; }

say "building (release)"
cargo build --release --quiet
cargo build --release --quiet -p adit-minersim
cargo build --release --quiet -p adit-benches --bin collector-cycle

scripts/pg.sh start >&2
admin_url=$(scripts/pg.sh url)
base=${admin_url%/*}
psql_q() { psql "$1" -qAtX -v ON_ERROR_STOP=1 -c "$2"; }
fresh_db() {
    psql_q "$admin_url" "DROP DATABASE IF EXISTS $1" >/dev/null
    psql_q "$admin_url" "CREATE DATABASE $1" >/dev/null
    DATABASE_URL=$base/$1 "$adit" migrate 2>/dev/null
    echo "$base/$1"
}

server_pid=
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}
trap stop_server EXIT
start_server() { # url, extra args...
    local url=$1; shift
    DATABASE_URL=$url RUST_LOG=warn,adit_writer::worker=debug "$adit" serve --listen "127.0.0.1:$PORT" "$@" 2>>"$out/serve.log" &
    server_pid=$!
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "adit did not start; see $out/serve.log" >&2; exit 1
}
peak_rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status"; }

# ---- (a) raw psql binary COPY -------------------------------------------
say "(a) raw psql binary COPY of $RAW_ROWS rows, 1 and 2 streams"
raw_url=$(fresh_db adit_bench_raw)
# The rows of (b): rounds of the same $SITES sites' miners, in the order
# collectors send them (a new site per upload would only ever append at the
# btree's right edge, a baseline no load run can meet or should).
cols=$("$adit" copy-file --rows "$RAW_ROWS" --sites "$SITES" --miners "$ROWS_PER_UPLOAD" \
    --out "$out/raw.copy" 2>/dev/null)
"$adit" copy-file --rows "$RAW_ROWS" --sites "$SITES" --miners "$ROWS_PER_UPLOAD" --parts 2 \
    --out "$out/raw.copy" >/dev/null 2>&1
part=$(psql_q "$raw_url" "SELECT adit_ensure_day_partition('miner_telemetry', (now() AT TIME ZONE 'UTC')::date)")
copy_into() { psql "$raw_url" -qX -v ON_ERROR_STOP=1 -c "\\copy $part ($cols) FROM '$1' WITH (FORMAT binary)"; }
raw_1=0; raw_2=0
for run in 1 2; do
    psql_q "$raw_url" "TRUNCATE $part; CHECKPOINT" >/dev/null
    t0=$(now); copy_into "$out/raw.copy"; t1=$(now)
    r1=$("$adit" bench-report rows-per-s --rows "$RAW_ROWS" --from "$t0" --to "$t1")
    psql_q "$raw_url" "TRUNCATE $part; CHECKPOINT" >/dev/null
    t0=$(now); copy_into "$out/raw.copy.0" & p0=$!; copy_into "$out/raw.copy.1" & p1=$!
    wait $p0 $p1; t1=$(now)
    r2=$("$adit" bench-report rows-per-s --rows "$RAW_ROWS" --from "$t0" --to "$t1")
    echo "  run $run: 1 stream $r1 rows/s, 2 streams $r2 rows/s" >&2
    raw_1=$(( r1 > raw_1 ? r1 : raw_1 )); raw_2=$(( r2 > raw_2 ? r2 : raw_2 ))
done
rm -f "$out"/raw.copy*
psql_q "$admin_url" "DROP DATABASE adit_bench_raw" >/dev/null

load() { # url, json report, extra args...
    local url=$1 report=$2; shift 2
    DATABASE_URL=$url "$adit" load --url "http://127.0.0.1:$PORT" --rows "$ROWS_PER_UPLOAD" \
        --quiet --json-report "$report" "$@" >&2
}

# ---- (b) end to end with the Parquet archive on, (e) RSS ----------------
say "(b) adit end to end (archive on), closed model, $CONCURRENCY uploads in flight, ${SECONDS_RUN}s"
e2e_url=$(fresh_db adit_bench_e2e)
rm -rf "$out/archive"
start_server "$e2e_url" --archive-url "file://$root/$out/archive"
load "$e2e_url" "$out/warmup.json" --create-sites "$SITES" --concurrency "$CONCURRENCY" --duration 3s
cpu0=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
load "$e2e_url" "$out/e2e.json" --create-sites "$SITES" --concurrency "$CONCURRENCY" \
    --duration "${SECONDS_RUN}s" --verify
cpu_ticks=$(( $(awk '{ print $14 + $15 }' "/proc/$server_pid/stat") - cpu0 ))

# ---- (d) latency at half the maximum rate -------------------------------
half_rate=$("$adit" bench-report upload-rate --report "$out/e2e.json" --times 0.5)
say "(d) open model at $half_rate uploads/s (half of max), ${SECONDS_RUN}s"
load "$e2e_url" "$out/half.json" --create-sites "$SITES" --rate "$half_rate" \
    --duration "${SECONDS_RUN}s" --verify --trace "$out/half-trace.csv"
rss=$(peak_rss_mib)
stop_server
archive_files=$(find "$out/archive" -name '*.parquet' | wc -l)
echo "  archive: $archive_files Parquet files" >&2
psql_q "$admin_url" "DROP DATABASE adit_bench_e2e" >/dev/null
rm -rf "$out/archive"

# ---- (g) overload: 3x the maximum rate ---------------------------------
over_rate=$("$adit" bench-report upload-rate --report "$out/e2e.json" --times 3)
say "(g) overload: open model at $over_rate uploads/s (3x max), ${SECONDS_RUN}s, no retries"
over_url=$(fresh_db adit_bench_over)
rm -rf "$out/archive"
start_server "$over_url" --archive-url "file://$root/$out/archive"
load "$over_url" "$out/overload.json" --create-sites "$SITES" --rate "$over_rate" \
    --max-in-flight 4000 --retries 0 --duration "${SECONDS_RUN}s" --verify
over_rss=$(peak_rss_mib)
stop_server
psql_q "$admin_url" "DROP DATABASE adit_bench_over" >/dev/null
rm -rf "$out/archive"

# ---- (c) front door alone -----------------------------------------------
say "(c) front door alone (writer discards), ${SECONDS_RUN}s"
fd_url=$(fresh_db adit_bench_fd)
start_server "$fd_url" --discard
load "$fd_url" "$out/frontdoor.json" --create-sites "$SITES" --concurrency "$CONCURRENCY" \
    --duration "${SECONDS_RUN}s"
stop_server
psql_q "$admin_url" "DROP DATABASE adit_bench_fd" >/dev/null

# ---- (h) the edge collector's cycle ---------------------------------------
MINERS=${BENCH_MINERS:-5000}
MINER_PORT=${BENCH_MINER_PORT:-20000}
sim_pid=
stop_sim() {
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
        kill -TERM "$sim_pid"; wait "$sim_pid" 2>/dev/null || true
    fi
    sim_pid=
}
trap 'stop_server; stop_sim' EXIT
collector_run() { # report name, minersim options...
    local report=$1; shift
    "$root/target/release/adit-minersim" --count "$MINERS" --base-port "$MINER_PORT" "$@" \
        >"$out/minersim.log" 2>&1 &
    sim_pid=$!
    for _ in $(seq 100); do
        grep -q '^adit-minersim: ' "$out/minersim.log" && break
        kill -0 "$sim_pid" 2>/dev/null || { cat "$out/minersim.log" >&2; exit 1; }
        sleep 0.1
    done
    head -1 "$out/minersim.log" >&2
    "$root/target/release/collector-cycle" --count "$MINERS" --base-port "$MINER_PORT" \
        --cycles 5 --json "$out/$report.json"
    stop_sim
}
say "(h) collector: $MINERS simulated miners, healthy farm, 5 cycles on one core"
collector_run collector --quirk-share 0.25
say "(h) collector: $MINERS miners, 1% dead, 1% slow (3 s), 0.5% malformed"
collector_run collector-faults --quirk-share 0.25 --dead-share 0.01 --slow-share 0.01 \
    --malformed-share 0.005

# ---- (f) criterion --------------------------------------------------------
if [ "${BENCH_SKIP_CRITERION:-0}" != 1 ]; then
    say "(f) criterion (short runs)"
    cargo bench -p adit-benches --quiet -- --warm-up-time 1 --measurement-time 3 >&2
    python3 benches/summarize.py > "$out/criterion.json"
else
    echo '{}' > "$out/criterion.json"
fi

# ---- table and JSON -------------------------------------------------------
# latest.json and the table (adit_load::bench).
"$adit" bench-report --dir "$out" --raw-1 "$raw_1" --raw-2 "$raw_2" --rss "$rss" \
    --over-rss "$over_rss" --cpu-ticks "$cpu_ticks"
