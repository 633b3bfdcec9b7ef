#!/usr/bin/env bash
# Runs the decode+validate fuzz target (fuzz/) for a bounded time:
#   scripts/fuzz.sh [seconds]      (default: $FUZZ_SECONDS or 60)
# Installs cargo-fuzz when missing. Works on stable Rust (no sanitizer).
# A crash leaves its input under fuzz/artifacts/; once fixed, copy it into
# fuzz/regressions/ so that `cargo test` keeps checking it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-${FUZZ_SECONDS:-60}}"
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
corpus=fuzz/corpus/decode_validate
mkdir -p "$corpus"
echo "fuzz: building the decode_validate target"
cargo fuzz build -s none decode_validate 2>&1 | tail -n 1
echo "fuzz: running decode_validate for ${seconds}s"
log=$(mktemp)
set +e
cargo fuzz run -s none decode_validate "$corpus" fuzz/seeds fuzz/regressions -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 >"$log" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    grep -v -e '^#[0-9]' -e '^ *[0-9]*: ' -e '^ *at ' "$log" | tail -n 40
    echo "fuzz: FAILED (exit $rc); the input is under fuzz/artifacts/decode_validate/"
    rm -f "$log"
    exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
echo "fuzz: ${runs:-?} inputs in ${seconds}s, no crash, corpus $(ls "$corpus" | wc -l) files"
rm -f "$log"
