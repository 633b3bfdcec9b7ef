#!/usr/bin/env bash
# Checks the operator artefacts under deploy/ with their real tools (run by
# `make test`; `make setup` installs the tools):
#   - Prometheus rules: `promtool check rules`, `promtool test rules`, and
#     every alert of the rules has a unit test;
#   - systemd units: `systemd-analyze verify` (any warning fails) and
#     `systemd-analyze security` (exposure at most 2.5), each on a copy whose
#     ExecStart names the binary built in this checkout (verify needs the
#     executable to exist; the unit itself names /usr/local/bin), and every
#     flag its ExecStart passes is one the binary accepts (`--help`).
# The Grafana dashboard and `adit top` are checked by cargo tests
# (tests/deploy_dashboard.rs, tests/top.rs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
export PATH="$ROOT/.data/tools/bin:$HOME/.cargo/bin:$PATH"

say() { printf 'deploy-check: %s\n' "$*"; }
die() { say "FAILED: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: run 'make setup'"; }

# ------------------------------------------------------------- Prometheus
need promtool
rules=deploy/prometheus/adit-rules.yml
tests=deploy/prometheus/adit-rules.test.yml
promtool check rules "$rules" >/dev/null || { promtool check rules "$rules"; die "promtool check rules"; }
(cd deploy/prometheus && promtool test rules "$(basename "$tests")") >/tmp/adit-promtool.$$ 2>&1 || {
    cat /tmp/adit-promtool.$$; rm -f /tmp/adit-promtool.$$; die "promtool test rules"; }
rm -f /tmp/adit-promtool.$$
untested=()
for alert in $(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$rules"); do
    grep -Eq "alertname: *$alert *$" "$tests" || untested+=("$alert")
done
[ "${#untested[@]}" -eq 0 ] || die "alerts without a unit test in $tests: ${untested[*]}"
say "Prometheus rules: $(grep -c '^ *- alert:' "$rules") alerts checked and unit-tested"

# ---------------------------------------------------------------- systemd
need systemd-analyze
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# $1 unit file, $2 installed binary path it names, $3 built binary.
check_unit() {
    local unit="$1" installed="$2" built="$3" name copy out flag
    name="$(basename "$unit")"
    copy="$work/$name"
    grep -q "^ExecStart=$installed " "$unit" || die "$unit: ExecStart does not run $installed"
    sed "s#^ExecStart=$installed #ExecStart=$built #" "$unit" >"$copy"
    out="$(systemd-analyze verify "$copy" 2>&1)" || die "systemd-analyze verify $name: $out"
    [ -z "$out" ] || die "systemd-analyze verify $name warns: $out"
    out="$(systemd-analyze security --offline=yes --threshold=25 "$copy" 2>&1)" ||
        die "systemd-analyze security $name: exposure above 2.5:
$(printf '%s\n' "$out" | grep -E '✗|Overall')"
    local help
    help="$("$built" "${@:4}" --help 2>&1)" || die "$built ${*:4} --help failed"
    for flag in $(sed -n "s#^ExecStart=$installed ##p" "$unit" | grep -o -- '--[a-z0-9-]*'); do
        grep -q -- "$flag" <<<"$help" || die "$name passes $flag, which '$built ${*:4}' does not take"
    done
    say "$name: verified ($(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]* [A-Z]*\).*/exposure \1/p'))"
}

adit_bin="${ADIT_BIN:-$ROOT/target/debug/adit}"
[ -x "$adit_bin" ] || cargo build -q --bin adit
check_unit deploy/adit.service /usr/local/bin/adit "$adit_bin" serve

if [ -e collector/src/main.rs ] || [ -e collector/src/bin/adit-collector.rs ]; then
    collector_bin="${ADIT_COLLECTOR_BIN:-$ROOT/target/debug/adit-collector}"
    [ -x "$collector_bin" ] || cargo build -q -p adit-collector --bin adit-collector
    check_unit deploy/adit-collector.service /usr/local/bin/adit-collector "$collector_bin"
else
    say "adit-collector.service: NOT verified: this checkout has no adit-collector binary yet"
fi
