#!/usr/bin/env bash
# Runs adit locally with embedded defaults (`make run`):
#   - DATABASE_URL unset: starts the private cluster (scripts/pg.sh) and uses it
#   - ADIT_ARCHIVE_URL defaults to file://<repo>/.data/archive, flushed every
#     5 s (ADIT_ARCHIVE_FLUSH_INTERVAL) so a demo upload shows in DuckDB at
#     once; `adit serve` on its own keeps the production default (5 min)
#   - applies migrations, creates (once) a demo collector key for site 1,
#     writes a gzip sample body and prints a ready-to-paste curl command
#   - then execs `adit serve`
# Environment: DATABASE_URL, ADIT_ARCHIVE_URL, ADIT_ARCHIVE_FLUSH_INTERVAL,
# ADIT_LISTEN (default 127.0.0.1:8080), ADIT_BIN (default
# target/release/adit), ADIT_DEMO_DIR (demo key and sample, default .data).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DATA="${ADIT_DEMO_DIR:-$ROOT/.data}"
BIN="${ADIT_BIN:-$ROOT/target/release/adit}"

msg() { printf 'run: %s\n' "$*" >&2; }
die() { msg "error: $*"; exit 1; }

[ -x "$BIN" ] || die "$BIN not found; build it first: make build (or use: make run)"
mkdir -p "$DATA"

if [ -z "${DATABASE_URL:-}" ]; then
    "$ROOT/scripts/pg.sh" start
    DATABASE_URL="$("$ROOT/scripts/pg.sh" url)"
fi
export DATABASE_URL

: "${ADIT_ARCHIVE_URL:=file://$DATA/archive}"
export ADIT_ARCHIVE_URL
: "${ADIT_ARCHIVE_FLUSH_INTERVAL:=5s}"
export ADIT_ARCHIVE_FLUSH_INTERVAL
case "$ADIT_ARCHIVE_URL" in
    file://*) mkdir -p "${ADIT_ARCHIVE_URL#file://}" ;;
esac

: "${ADIT_LISTEN:=127.0.0.1:8080}"
export ADIT_LISTEN

msg "applying migrations"
"$BIN" migrate

# The demo key is kept for the database it was made in: another
# DATABASE_URL (or a wiped cluster) gets a new one.
KEYFILE="$DATA/demo-key"
KEYDB="$DATA/demo-key.database"
if [ -s "$KEYFILE" ] && [ "$(cat "$KEYDB" 2>/dev/null)" = "$DATABASE_URL" ] &&
    "$BIN" keys list 2>/dev/null | grep -Eq "active.*name=demo"; then
    KEY="$(tr -d '[:space:]' <"$KEYFILE")"
else
    msg "creating demo collector key (site 1)"
    out="$("$BIN" keys create --site 1 --name demo)"
    KEY="$(printf '%s\n' "$out" | tail -n 1 | tr -d '[:space:]')"
    [ -n "$KEY" ] || die "'adit keys create' printed no key"
    (umask 077 && printf '%s\n' "$KEY" >"$KEYFILE" && printf '%s\n' "$DATABASE_URL" >"$KEYDB")
fi

# One sample as an edge collector sends it, without a timestamp (the server
# stamps it).
SAMPLE="$DATA/demo-sample.json.gz"
gzip -9 -n -c >"$SAMPLE" <<'EOF'
[
  {
    "miner_id": "SN123456789",
    "ip_address": "192.168.1.100",
    "online": true,
    "hashrate_ghs": 110000,
    "hashrate_5s_ghs": 108500,
    "hashrate_expected_ghs": 110000,
    "temperature_avg": 65.5,
    "temperature_min": 62.0,
    "temperature_max": 72.0,
    "temperature_chips": [62, 65, 68, 70, 72],
    "fan_speeds": [5200, 5300, 5100, 5250],
    "frequency_avg": 580,
    "accepted_shares": 12500,
    "rejected_shares": 12,
    "hardware_errors": 0,
    "uptime_seconds": 864000,
    "power_consumption": 3250,
    "efficiency": 29.5,
    "pool_url": "stratum+tcp://pool.example.com:3333",
    "worker_name": "farm1.worker001",
    "pool_latency_ms": 45,
    "boards": [
      {"id": 0, "hashrate": 36700, "temp": 65, "chips_ok": 76, "chips_total": 76},
      {"id": 1, "hashrate": 36800, "temp": 67, "chips_ok": 76, "chips_total": 76},
      {"id": 2, "hashrate": 36500, "temp": 68, "chips_ok": 75, "chips_total": 76}
    ],
    "boards_total": 3,
    "boards_healthy": 3,
    "overall_health": "healthy",
    "model": "Antminer S19 Pro",
    "firmware_version": "Vnish 1.2.3",
    "error_message": "",
    "latency_ms": 45
  }
]
EOF

# Address for curl: a wildcard listen address is reached via loopback.
host="${ADIT_LISTEN%:*}"
port="${ADIT_LISTEN##*:}"
case "$host" in
    '' | 0.0.0.0 | '*') host=127.0.0.1 ;;
    '[::]' | '::') host='[::1]' ;;
esac

cat <<EOF

==================================================================
 adit (demo)
   database:    ${DATABASE_URL}
   archive:     ${ADIT_ARCHIVE_URL}
                (files every ${ADIT_ARCHIVE_FLUSH_INTERVAL} for the demo; adit serve's default is 5min)
   listen:      ${ADIT_LISTEN}
   demo key:    ${KEY}   (site 1, saved in ${KEYFILE})

 Upload the sample (from another terminal):

curl -sS -X POST http://${host}:${port}/api/collector/upload -H 'X-Collector-Key: ${KEY}' -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' --data-binary '@${SAMPLE}'

==================================================================

EOF

exec "$BIN" serve
