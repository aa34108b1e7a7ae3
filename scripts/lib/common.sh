# Shared helpers for Flowgate's scripts: package installs, building, lab constants.
# shellcheck shell=bash

FG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export FG_ROOT

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs Debian packages that are missing (apt-get update at most once per run).
ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "need root to install: ${missing[*]}"
    log "installing ${missing[*]}"
    if [ -z "${FG_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
        export FG_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# What building and running Flowgate needs.
BUILD_PACKAGES=(libdpdk-dev dpdk dpdk-dev clang libclang-dev pkg-config build-essential)
LAB_PACKAGES=(iproute2 ethtool iputils-ping curl iperf3 netcat-openbsd python3 python3-venv procps jq)

ensure_rust() {
    command -v cargo >/dev/null 2>&1 || { [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"; }
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) first"
}

build_release() {
    ensure_rust
    log "building flowgate (release)"
    (cd "$FG_ROOT" && cargo build --release --locked --bins -q) || die "cargo build failed"
    FLOWGATE_BIN="$FG_ROOT/target/release/flowgate"
    FLOWGATECTL_BIN="$FG_ROOT/target/release/flowgatectl"
    export FLOWGATE_BIN FLOWGATECTL_BIN
}
