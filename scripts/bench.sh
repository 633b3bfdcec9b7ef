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
#   (i) datasets, per dataset (metrics_aggregated append, market_data
#       upsert): raw psql binary COPY of the rows `adit load --dataset`
#       sends into the same table (upsert: into the staging table plus the
#       same INSERT … ON CONFLICT), best of 2; then adit end to end with
#       `adit load --dataset` of exactly those rows (closed model,
#       --verify), the ratio and adit's CPU per million rows. Skipped with a
#       message when the server answers 404 on the dataset upload path.
#       metrics_aggregated then runs end to end once more, the same rows
#       with BENCH_ALERT_RULES (100) enabled alert rules judged on every
#       committed row: its rate, its ratio to the rules-off run, its CPU.
#   (f) criterion figures
# Prints one table and writes target/bench/latest.json.
# Knobs (environment): BENCH_RAW_ROWS, BENCH_SECONDS, BENCH_CONCURRENCY,
# BENCH_SITES, BENCH_ROWS_PER_UPLOAD, BENCH_SKIP_CRITERION=1,
# BENCH_SKIP_DATASETS=1, BENCH_DATASET_UPLOADS_PER_SITE (25: 8 sites x 25
# uploads x 1,000 rows = 200,000 rows per dataset), BENCH_ALERT_RULES (100;
# 0 skips the rules-on run),
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

# ---- (i) datasets: raw COPY of the same rows vs adit end to end -----------
# metrics_aggregated with alert rules on: the same rows (new sites, table
# emptied) to a server started with BENCH_ALERT_RULES enabled rules over
# every numeric column and operator; most never breach, one in ten
# (error_rate > 0.05) opens and resolves alerts as the rows come.
bench_alert_rules() { # url (the server of the rules-off run is up)
    local url=$1 rules=${BENCH_ALERT_RULES:-100}
    say "(i) metrics_aggregated again with $rules enabled alert rules"
    stop_server
    psql_q "$url" "TRUNCATE metrics_aggregated; DELETE FROM active_alerts; DELETE FROM alert_rules;
        INSERT INTO alert_rules (name, metric, operator, threshold, severity)
        SELECT 'bench-' || g,
               CASE WHEN g % 10 = 0 THEN 'error_rate'
                    ELSE (ARRAY['qps','avg_latency_ms','p95_latency_ms','p99_latency_ms','error_rate','total_requests'])[1 + g % 6] END,
               CASE WHEN g % 10 = 0 THEN 'greater_than'
                    ELSE (ARRAY['greater_than','greater_equal','less_than','less_equal','equal'])[1 + g % 5] END,
               CASE WHEN g % 10 = 0 THEN 0.05 WHEN g % 5 < 2 THEN 1e12 ELSE -1 END,
               (ARRAY['low','medium','high','critical'])[1 + g % 4]
        FROM generate_series(1, $rules) g; CHECKPOINT" >/dev/null
    rm -rf "$out/archive"
    start_server "$url" --archive-url "file://$root/$out/archive"
    local cpu0 ticks
    cpu0=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
    DATABASE_URL=$url "$adit" load --url "http://127.0.0.1:$PORT" --dataset metrics_aggregated \
        --create-sites "$SITES" --rows "$ROWS_PER_UPLOAD" --bodies-per-site "$DS_UPLOADS" \
        --requests $(( SITES * DS_UPLOADS )) --concurrency "$CONCURRENCY" --duration 300s \
        --verify --quiet --json-report "$out/dataset-metrics_aggregated-rules.json" >&2 \
        || echo "  adit load with alert rules failed (above); its report says how" >&2
    ticks=$(( $(awk '{ print $14 + $15 }' "/proc/$server_pid/stat") - cpu0 ))
    printf '{"rules":%s,"adit_cpu_ticks":%s}\n' "$rules" "$ticks" \
        >"$out/dataset-metrics_aggregated-rules-raw.json"
    echo "  alerts opened: $(psql_q "$url" "SELECT count(*) FROM active_alerts")" >&2
}
rm -f "$out"/dataset-*.json
if [ "${BENCH_SKIP_DATASETS:-0}" != 1 ]; then
    DS_UPLOADS=${BENCH_DATASET_UPLOADS_PER_SITE:-25}
    DS_ROWS=$(( SITES * ROWS_PER_UPLOAD * DS_UPLOADS ))
    for ds in metrics_aggregated market_data; do
        say "(i) dataset $ds: raw psql binary COPY of $DS_ROWS rows, then adit end to end"
        ds_url=$(fresh_db adit_bench_ds)
        # Partitions for the rows' days (the load's writer makes its own on
        # demand; the raw COPY needs them there).
        psql_q "$ds_url" "SELECT count(adit_ensure_dataset_partition('$ds'::regclass,
            (SELECT declaration->>'partition' FROM dataset_declarations WHERE dataset = '$ds'), g))
            FROM generate_series(now() - interval '14 days', now(), interval '1 day') g" >/dev/null
        # The rows `adit load --dataset` sends below: the same seed, sites
        # (1000… in a fresh database) and uploads, in the order it sends them.
        "$adit" copy-file --dataset "$ds" --rows "$DS_ROWS" --sites "$SITES" \
            --miners "$ROWS_PER_UPLOAD" --out "$out/ds.copy" --psql-script "$out/ds.sql" >/dev/null
        ds_raw=0
        for run in 1 2; do
            psql_q "$ds_url" "TRUNCATE $ds; CHECKPOINT" >/dev/null
            t0=$(now); psql "$ds_url" -qX -v ON_ERROR_STOP=1 -f "$out/ds.sql" >/dev/null; t1=$(now)
            r=$("$adit" bench-report rows-per-s --rows "$DS_ROWS" --from "$t0" --to "$t1")
            echo "  run $run: $r rows/s" >&2
            ds_raw=$(( r > ds_raw ? r : ds_raw ))
        done
        rm -f "$out/ds.copy" "$out/ds.sql"
        psql_q "$ds_url" "TRUNCATE $ds; CHECKPOINT" >/dev/null
        rm -rf "$out/archive"
        start_server "$ds_url" --archive-url "file://$root/$out/archive"
        # Does this server take dataset uploads? (A probe key on site 999
        # keeps sites 1000… for the load.)
        probe_key=$(DATABASE_URL=$ds_url "$adit" keys create --site 999 --name bench-probe 2>/dev/null | tail -1)
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "x-collector-key: $probe_key" \
            -H 'content-type: application/json' --data '[]' \
            "http://127.0.0.1:$PORT/api/datasets/$ds/upload")
        if [ "$code" = 404 ]; then
            echo "  POST /api/datasets/$ds/upload answered 404: this adit has no dataset upload; end to end skipped" >&2
            printf '{"raw_rows_per_s":%s,"adit_cpu_ticks":null,"skipped":"POST /api/datasets/%s/upload answered 404"}\n' \
                "$ds_raw" "$ds" >"$out/dataset-$ds-raw.json"
        else
            cpu0=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
            DATABASE_URL=$ds_url "$adit" load --url "http://127.0.0.1:$PORT" --dataset "$ds" \
                --create-sites "$SITES" --rows "$ROWS_PER_UPLOAD" --bodies-per-site "$DS_UPLOADS" \
                --requests $(( SITES * DS_UPLOADS )) --concurrency "$CONCURRENCY" --duration 300s \
                --verify --quiet --json-report "$out/dataset-$ds.json" >&2 \
                || echo "  adit load --dataset $ds failed (above); its report says how" >&2
            ds_ticks=$(( $(awk '{ print $14 + $15 }' "/proc/$server_pid/stat") - cpu0 ))
            printf '{"raw_rows_per_s":%s,"adit_cpu_ticks":%s}\n' "$ds_raw" "$ds_ticks" \
                >"$out/dataset-$ds-raw.json"
            if [ "$ds" = metrics_aggregated ] && [ "${BENCH_ALERT_RULES:-100}" -gt 0 ]; then
                bench_alert_rules "$ds_url"
            fi
        fi
        stop_server
        rm -rf "$out/archive"
        psql_q "$admin_url" "DROP DATABASE adit_bench_ds" >/dev/null
    done
fi

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
