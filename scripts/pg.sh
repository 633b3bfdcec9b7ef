#!/usr/bin/env bash
# Private PostgreSQL cluster for adit development and tests, under <repo>/.data/pg.
#
#   scripts/pg.sh start    initdb if needed, start, create role/database "adit"
#   scripts/pg.sh stop     fast shutdown (no-op when not running)
#   scripts/pg.sh status   exit 0 when running
#   scripts/pg.sh url      print postgres://adit@127.0.0.1:$PORT/adit (stdout)
#   scripts/pg.sh psql …   psql into the "adit" database
#   scripts/pg.sh drop-test-databases
#                          drop the adit_t_* databases earlier test runs left
#                          (each test gets its own; `make test` calls this first)
#
# Environment: ADIT_PG_DIR (cluster directory, default .data/pg), ADIT_PG_PORT (default 54329), ADIT_PG_BIN (PostgreSQL bin dir,
# default: newest /usr/lib/postgresql/*/bin, preferring 15+), ADIT_PG_WAIT
# (seconds to wait for the server to accept connections, default 30).
#
# Layout: .data/pg/data (PGDATA), .data/pg/log (server log), .data/pg/sock
# (unix socket directory). Messages go to stderr; only `url` writes stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PGDIR="${ADIT_PG_DIR:-$ROOT/.data/pg}"
PGDATA_DIR="$PGDIR/data"
LOGFILE="$PGDIR/log"
SOCKDIR="$PGDIR/sock"
PORT="${ADIT_PG_PORT:-54329}"
WAIT="${ADIT_PG_WAIT:-30}"
PGUSER_OS=""   # OS user the server runs as when we are root

msg() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { msg "error: $*"; exit 1; }

case "$PORT" in '' | *[!0-9]*) die "ADIT_PG_PORT must be a number (got '$PORT')" ;; esac
case "$WAIT" in '' | *[!0-9]*) die "ADIT_PG_WAIT must be a number of seconds (got '$WAIT')" ;; esac

# ---------------------------------------------------------------- binaries
# Sets PGBIN and PGBIN_V (major version); returns 1 when nothing is found.
pick_pgbin() {
    PGBIN="" PGBIN_V=""
    if [ -n "${ADIT_PG_BIN:-}" ]; then
        [ -x "$ADIT_PG_BIN/initdb" ] || die "ADIT_PG_BIN=$ADIT_PG_BIN has no initdb"
        PGBIN="$ADIT_PG_BIN"
        return 0
    fi
    local d best="" best_v=0 v
    for d in /usr/lib/postgresql/*/bin; do
        if [ ! -x "$d/initdb" ] || [ ! -x "$d/pg_ctl" ]; then continue; fi
        v="$(basename "$(dirname "$d")")"
        v="${v%%.*}"
        case "$v" in '' | *[!0-9]*) continue ;; esac
        if [ "$v" -gt "$best_v" ]; then best="$d"; best_v="$v"; fi
    done
    if [ -z "$best" ]; then
        # Not Debian's layout: fall back to whatever is on PATH.
        local p
        p="$(command -v pg_ctl 2>/dev/null || true)"
        if [ -n "$p" ] && [ -x "$(dirname "$p")/initdb" ]; then
            PGBIN="$(dirname "$p")"
            return 0
        fi
        return 1
    fi
    PGBIN="$best"
    PGBIN_V="$best_v"
}

find_pgbin() {
    pick_pgbin ||
        die "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb); run 'make setup' (scripts/setup.sh)"
    if [ -n "$PGBIN_V" ] && [ "$PGBIN_V" -lt 15 ]; then
        msg "warning: using PostgreSQL $PGBIN_V from $PGBIN (15+ preferred)"
    fi
}

find_psql() {
    if [ -n "${PGBIN:-}" ] && [ -x "$PGBIN/psql" ]; then PSQL="$PGBIN/psql"; return; fi
    PSQL="$(command -v psql 2>/dev/null || true)"
    [ -n "$PSQL" ] || die "psql not found; run 'make setup' (scripts/setup.sh)"
}

# ------------------------------------------------------------- privileges
# PostgreSQL refuses to run as root: as root, run the server tools as the
# "postgres" OS user (created by the Debian package).
as_pg() {
    if [ -n "$PGUSER_OS" ]; then
        (cd / && runuser -u "$PGUSER_OS" -- "$@")
    else
        "$@"
    fi
}

setup_user() {
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 ||
            die "running as root but the 'postgres' OS user does not exist (install the postgresql package: make setup)"
        command -v runuser >/dev/null 2>&1 || die "runuser (util-linux) is required when running as root"
        PGUSER_OS=postgres
    fi
}

# As root, the postgres user must be able to reach .data/pg: every parent
# directory needs search (x) permission for it. Grant o+x only where missing.
fix_traversal() {
    [ -n "$PGUSER_OS" ] || return 0
    if runuser -u "$PGUSER_OS" -- test -x "$PGDIR" 2>/dev/null &&
        runuser -u "$PGUSER_OS" -- test -w "$PGDIR" 2>/dev/null; then
        return 0
    fi
    local path="" part
    local IFS=/
    # shellcheck disable=SC2086
    set -f
    for part in $PGDIR; do
        [ -n "$part" ] || continue
        path="$path/$part"
        if ! runuser -u "$PGUSER_OS" -- test -x "$path" 2>/dev/null; then
            chmod o+x "$path" || die "cannot grant o+x on $path so that user $PGUSER_OS can reach $PGDIR"
            msg "chmod o+x $path (user $PGUSER_OS must traverse it to reach .data/pg)"
        fi
    done
    set +f
    runuser -u "$PGUSER_OS" -- test -w "$PGDIR" 2>/dev/null ||
        die "user $PGUSER_OS still cannot write $PGDIR (check permissions / mount options)"
}

prepare_dirs() {
    mkdir -p "$PGDIR"
    # A unix socket path is limited to 107 bytes; fall back to /tmp for deep
    # checkouts (TCP on 127.0.0.1 is what clients use anyway).
    if [ $((${#SOCKDIR} + 20)) -gt 107 ]; then
        SOCKDIR="/tmp/adit-pg-$(printf '%s' "$PGDIR" | cksum | cut -d' ' -f1)"
    fi
    mkdir -p "$SOCKDIR"
    if [ -n "$PGUSER_OS" ]; then
        chown "$PGUSER_OS:" "$PGDIR" "$SOCKDIR"
        [ ! -e "$LOGFILE" ] || chown "$PGUSER_OS:" "$LOGFILE"
        fix_traversal
    fi
    chmod 700 "$SOCKDIR"
}

# ------------------------------------------------------------- liveness
# PID of our running postmaster, or nothing. The pid from postmaster.pid is
# only trusted if that process really is a postgres serving our data
# directory (pids are reused after a kill -9, especially in containers).
postmaster_pid() {
    local pidfile="$PGDATA_DIR/postmaster.pid" pid
    [ -f "$pidfile" ] || return 0
    pid="$(head -n1 "$pidfile" 2>/dev/null || true)"
    case "$pid" in '' | *[!0-9]*) return 0 ;; esac
    [ -d "/proc/$pid" ] || return 0
    if [ -e "/proc/$pid/cwd" ] && [ "/proc/$pid/cwd" -ef "$PGDATA_DIR" ]; then
        echo "$pid"
        return 0
    fi
    # cwd unreadable (different user without privileges): check the command line.
    local cmd
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    case "$cmd" in
        *postgres*"$PGDATA_DIR"*) [ -r "/proc/$pid/cwd" ] || echo "$pid" ;;
    esac
}

# Other processes still attached to the data directory (orphaned backends of
# a postmaster that was killed): the new postmaster refuses to start while
# they hold the old shared memory segment.
orphans() {
    local p
    for p in /proc/[0-9]*; do
        [ -e "$p/cwd" ] && [ "$p/cwd" -ef "$PGDATA_DIR" ] 2>/dev/null && echo "${p#/proc/}"
    done
    return 0
}

running_port() {
    sed -n 4p "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true
}

pg_ready() {
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -t 2 >/dev/null 2>&1
}

log_tail() {
    if [ -r "$LOGFILE" ]; then
        msg "last lines of $LOGFILE:"
        tail -n 20 "$LOGFILE" | sed 's/^/    /' >&2
    fi
}

# ------------------------------------------------------------- config
write_conf() {
    local conf="$PGDATA_DIR/adit.conf"
    cat >"$conf" <<EOF
# Written by scripts/pg.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKDIR'
max_connections = 200

# Durability stays on: adit's tests exercise crash safety.
fsync = on
synchronous_commit = on
full_page_writes = on

# Memory and WAL for a small (2-core) box doing bulk COPY.
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 256MB
wal_buffers = 16MB
wal_compression = off
# 2GB measured better than 8GB under closed load (116-119k vs 102-108k
# rows/s end to end, PostgreSQL 8.2 vs 9.1 CPU-s per million rows, A/B on
# one cluster): with more room, WAL segments are created new instead of
# recycled.
max_wal_size = 2GB
# backend_flush_after stays at PostgreSQL's default (0) for the cluster:
# adit's writer sets 2MB on its own sessions (writer/src/worker.rs), and
# the raw psql COPY baseline of make bench keeps the faster default (2MB
# cost raw COPY 1-4 % in an A/B here), so the ratio is not won by a slower
# baseline. (No backticks in this heredoc: the shell would run them.)
min_wal_size = 256MB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
max_locks_per_transaction = 256
random_page_cost = 1.1
effective_cache_size = 1GB
max_worker_processes = 4
max_parallel_workers = 2
max_parallel_workers_per_gather = 1

timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = -1
EOF
    if ! grep -q "^include_if_exists = 'adit.conf'" "$PGDATA_DIR/postgresql.conf"; then
        printf "\n# adit settings (scripts/pg.sh)\ninclude_if_exists = 'adit.conf'\n" >>"$PGDATA_DIR/postgresql.conf"
    fi
    [ -z "$PGUSER_OS" ] || chown "$PGUSER_OS:" "$conf"
}

# ------------------------------------------------------------- commands
do_initdb() {
    [ -f "$PGDATA_DIR/PG_VERSION" ] && return 0
    if [ -d "$PGDATA_DIR" ] && [ -n "$(ls -A "$PGDATA_DIR" 2>/dev/null)" ]; then
        die "$PGDATA_DIR exists but is not a PostgreSQL data directory; remove it (make clean-data)"
    fi
    msg "initializing cluster in $PGDATA_DIR ($("$PGBIN/postgres" --version))"
    local out
    if ! out="$(as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C 2>&1)"; then
        printf '%s\n' "$out" >&2
        rm -rf "$PGDATA_DIR"
        die "initdb failed"
    fi
}

ensure_db() {
    local q=("$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tA)
    local dir
    dir="$("${q[@]}" -c "SHOW data_directory")" || die "cannot query the server on port $PORT"
    [ "$dir" -ef "$PGDATA_DIR" ] ||
        die "the server on port $PORT serves $dir, not $PGDATA_DIR; choose another port with ADIT_PG_PORT"
    if [ -z "$("${q[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'adit'")" ]; then
        "${q[@]}" -c "CREATE ROLE adit SUPERUSER LOGIN" >/dev/null
        msg "created role adit"
    fi
    if [ -z "$("${q[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'adit'")" ]; then
        "${q[@]}" -c "CREATE DATABASE adit OWNER adit" >/dev/null
        msg "created database adit"
    fi
}

cmd_start() {
    find_pgbin
    find_psql
    setup_user
    prepare_dirs
    # Serialize concurrent starts (e.g. `make test` and `make run` at once).
    exec 9>"$PGDIR/.lock"
    flock -w 120 9 || die "timed out waiting for another 'pg.sh start' ($PGDIR/.lock)"

    do_initdb

    local pid
    pid="$(postmaster_pid)"
    if [ -n "$pid" ]; then
        local rport
        rport="$(running_port)"
        if [ -n "$rport" ] && [ "$rport" != "$PORT" ]; then
            die "cluster already running on port $rport, not $PORT; run 'scripts/pg.sh stop' first"
        fi
        msg "already running (pid $pid, port $PORT)"
    else
        # Left behind by a killed server. PostgreSQL itself would refuse to
        # start if the recorded pid still exists, e.g. as an unreaped zombie or
        # reused by another process; the socket directory is private to us.
        if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
            msg "removing stale postmaster.pid (server not running)"
            rm -f "$PGDATA_DIR/postmaster.pid"
        fi
        rm -f "$SOCKDIR/.s.PGSQL.$PORT.lock" "$SOCKDIR/.s.PGSQL.$PORT"
        # Backends of a killed postmaster normally exit on their own within
        # moments; one busy in a long query only notices at its end. After 5s
        # they get SIGQUIT (PostgreSQL's immediate-exit signal for backends).
        local i=0 left
        left="$(orphans)"
        while [ -n "$left" ] && [ "$i" -lt 40 ]; do
            [ "$i" -gt 0 ] || msg "waiting for old server processes to exit: ${left//$'\n'/ }"
            if [ "$i" -eq 20 ]; then
                msg "sending SIGQUIT to leftover server processes: ${left//$'\n'/ }"
                # shellcheck disable=SC2086
                kill -QUIT $left 2>/dev/null || true
            fi
            sleep 0.25
            i=$((i + 1))
            left="$(orphans)"
        done
        [ -z "$left" ] || die "old server processes still use $PGDATA_DIR: ${left//$'\n'/ } (kill them, then retry)"

        if pg_ready; then
            die "port $PORT on 127.0.0.1 is already served by another PostgreSQL; choose another with ADIT_PG_PORT"
        fi
        write_conf
        msg "starting PostgreSQL on 127.0.0.1:$PORT (log: $LOGFILE)"
        # The server is started detached (readiness is polled below) and must
        # not inherit the lock descriptor, or it would hold the lock forever.
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$LOGFILE" -W -s start >/dev/null 9>&- ||
            { log_tail; die "pg_ctl start failed"; }
    fi

    # Wait until it accepts connections (crash recovery may take a while).
    local t0=$SECONDS
    until [ -n "$(postmaster_pid)" ] && pg_ready; do
        if [ $((SECONDS - t0)) -ge "$WAIT" ]; then
            log_tail
            die "server did not accept connections within ${WAIT}s (set ADIT_PG_WAIT to wait longer)"
        fi
        if [ $((SECONDS - t0)) -ge 3 ] && [ -z "$(postmaster_pid)" ]; then
            log_tail
            die "server exited during startup"
        fi
        sleep 0.2
    done

    ensure_db
    msg "ready: postgres://adit@127.0.0.1:$PORT/adit"
}

cmd_stop() {
    if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
        msg "no cluster in $PGDATA_DIR"
        return 0
    fi
    local pid
    pid="$(postmaster_pid)"
    if [ -z "$pid" ]; then
        msg "not running"
        return 0
    fi
    find_pgbin
    setup_user
    msg "stopping (pid $pid)"
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 120 -s stop ||
        die "pg_ctl stop failed"
}

cmd_status() {
    local pid
    pid="$(postmaster_pid)"
    if [ -n "$pid" ]; then
        msg "running (pid $pid, port $(running_port), data $PGDATA_DIR)"
        return 0
    fi
    msg "not running"
    return 3
}

cmd_psql() {
    pick_pgbin || true
    find_psql
    exec "$PSQL" -h 127.0.0.1 -p "$PORT" -U adit -d adit "$@"
}

cmd_drop_test_databases() {
    pick_pgbin || true
    find_psql
    local q=("$PSQL" -h 127.0.0.1 -p "$PORT" -U adit -d adit -qAtX)
    local db n=0
    for db in $("${q[@]}" -c "SELECT datname FROM pg_database WHERE datname LIKE 'adit\_t\_%'"); do
        "${q[@]}" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null && n=$((n + 1))
    done
    msg "dropped $n test database(s) left by earlier runs"
}

usage() {
    echo "usage: scripts/pg.sh start|stop|status|url|psql [psql args...]|drop-test-databases" >&2
    exit 2
}

[ $# -ge 1 ] || usage
cmd="$1"
shift
case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) printf 'postgres://adit@127.0.0.1:%s/adit\n' "$PORT" ;;
    psql) cmd_psql "$@" ;;
    drop-test-databases) cmd_drop_test_databases ;;
    -h | --help | help) usage ;;
    *) msg "unknown command '$cmd'"; usage ;;
esac
