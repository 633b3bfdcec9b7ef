#!/usr/bin/env bash
# Installs what adit needs on a fresh Debian/Ubuntu machine, as root or via
# sudo. Idempotent and silent when everything is already present.
#
#   - PostgreSQL server (15+ preferred) when no /usr/lib/postgresql/*/bin/initdb
#   - make, a C compiler/linker (cc), gzip, python3 and pip
#   - the tools that check the deploy/ artefacts: systemd-analyze (systemd),
#     tmux, and promtool (taken out of Debian's prometheus package into
#     .data/tools/bin, without installing or starting a Prometheus server)
#   - checks that cargo/rustc are available and recent enough (cannot be
#     installed from here: prints what to do instead)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

msg() { printf 'setup: %s\n' "$*" >&2; }
die() { msg "error: $*"; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

# ------------------------------------------------------------------ apt
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then
        # Never hang on a password prompt when nobody can answer it.
        if [ -t 0 ] && [ -z "${CI:-}" ]; then SUDO=(sudo); else SUDO=(sudo -n); fi
    else
        SUDO=(__no_sudo__)
    fi
fi

APT_UPDATED=0
apt_install() {
    # $@: packages, or "a|b" alternatives (first one with an install candidate)
    have apt-get || die "no apt-get: install these yourself: $*"
    [ "${SUDO[0]:-}" != "__no_sudo__" ] ||
        die "not root and no sudo: install these packages as root: $*"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" -eq 0 ]; then
        msg "apt-get update"
        "${SUDO[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
        APT_UPDATED=1
    fi
    local pkgs=() spec alt chosen
    for spec in "$@"; do
        chosen=""
        IFS='|' read -r -a alts <<<"$spec"
        for alt in "${alts[@]}"; do
            if apt-cache show "$alt" 2>/dev/null | grep -q '^Package:'; then chosen="$alt"; break; fi
        done
        [ -n "$chosen" ] || die "no apt package available for: ${spec//|/ or }"
        pkgs+=("$chosen")
    done
    msg "apt-get install ${pkgs[*]}"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${pkgs[@]}" >/dev/null ||
        die "apt-get install ${pkgs[*]} failed"
}

pg_server_present() {
    local f
    for f in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$f" ] && return 0
    done
    return 1
}

need=()
pg_server_present || need+=("postgresql-17|postgresql-16|postgresql-15|postgresql")
have psql || need+=("postgresql-client-17|postgresql-client-16|postgresql-client-15|postgresql-client")
have make || need+=(make)
have cc || need+=(gcc)
[ -e /usr/include/stdlib.h ] || need+=(libc6-dev)
have gzip || need+=(gzip)
have runuser && have flock || need+=(util-linux)
have python3 || need+=(python3)
if ! have pip3 && ! have pip && ! python3 -m pip --version >/dev/null 2>&1; then
    need+=(python3-pip)
fi
[ -e /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
have systemd-analyze || need+=(systemd)
have tmux || need+=(tmux)

if [ "${#need[@]}" -gt 0 ]; then
    apt_install "${need[@]}"
fi

pg_server_present || die "PostgreSQL server binaries still missing after install"

# The Debian package creates a "postgres" OS user; pg.sh needs it when root.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    die "the 'postgres' OS user is missing (reinstall the postgresql package)"
fi

# -------------------------------------------------------------- promtool
# Debian ships promtool only inside the prometheus package, whose install
# would also enable and start a Prometheus server on :9090. The tool alone
# is taken from the package instead (apt-get download, dpkg-deb), for
# scripts/deploy-check.sh.
TOOLS="$ROOT/.data/tools/bin"
if ! have promtool && [ ! -x "$TOOLS/promtool" ]; then
    have apt-get && have dpkg-deb || die "no apt-get/dpkg-deb: install promtool (Prometheus) yourself"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    if ! (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1); then
        if [ "$APT_UPDATED" -eq 0 ] && [ "${SUDO[0]:-}" != "__no_sudo__" ]; then
            msg "apt-get update"
            "${SUDO[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
            APT_UPDATED=1
        fi
        (cd "$tmp" && apt-get download -qq prometheus >/dev/null) ||
            die "cannot download Debian's prometheus package (for promtool)"
    fi
    msg "promtool from $(basename "$tmp"/prometheus_*.deb) into .data/tools/bin"
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
    mkdir -p "$TOOLS"
    install -m 0755 "$tmp/usr/bin/promtool" "$TOOLS/promtool"
    rm -rf "$tmp"
    trap - EXIT
fi

# ------------------------------------------------------------------ rust
if ! have cargo; then
    if [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
        die "cargo is installed in ${HOME:-/root}/.cargo/bin but not on PATH: run
    export PATH=\"\$HOME/.cargo/bin:\$PATH\"
and retry"
    fi
    die "cargo (Rust) not found. Install the Rust toolchain with rustup (https://rustup.rs):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . \"\$HOME/.cargo/env\"
then run 'make setup' again. (Debian's own rustc package is too old for this workspace.)"
fi

need_rust="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml" 2>/dev/null | head -n1)"
if [ -n "$need_rust" ] && have rustc; then
    have_rust="$(rustc --version | awk '{print $2}')"
    have_rust="${have_rust%%-*}"
    lowest="$(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -n1)"
    if [ "$lowest" != "$need_rust" ]; then
        die "rustc $have_rust is older than the required $need_rust: run 'rustup update stable'"
    fi
fi

# ---------------------------------------------------------------- python
# Independent readers and servers the tests use: pyarrow and DuckDB read the
# Parquet archive back (the README's DuckDB query runs in tests/demo.rs),
# moto's server stands in for S3 on loopback.
if ! python3 -c 'import pyarrow, duckdb, boto3, moto' >/dev/null 2>&1 || ! have moto_server; then
    echo "setup: installing pyarrow, duckdb and moto[server] (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check pyarrow duckdb 'moto[server]' boto3 \
        || python3 -m pip install --quiet --break-system-packages pyarrow duckdb 'moto[server]' boto3 \
        || die "could not install pyarrow, duckdb and moto[server] with pip"
fi
