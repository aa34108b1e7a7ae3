#!/usr/bin/env bash
# Runs all of Flowgate's tests on this machine, installing what they need first:
# formatting, clippy, unit and property tests, and the integration tests that drive the
# real `flowgate` binary through the real DPDK path (pcap in/pcap out, network namespaces).
# Needs root (DPDK EAL, namespaces). In CI (CI=true) nothing may be skipped.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

[ "$(id -u)" -eq 0 ] || die "scripts/test.sh needs root (DPDK EAL and network namespaces)"
ensure_packages "${BUILD_PACKAGES[@]}" "${LAB_PACKAGES[@]}"
ensure_rust
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >/dev/null 2>&1 || true
cd "$FG_ROOT"

# The AWS CLI and boto3 (from PyPI) drive the AWS-compatible API in the integration tests.
VENV="$FG_ROOT/.venv"
if [ ! -x "$VENV/bin/aws" ] || ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    log "installing awscli and boto3 into $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/pip" install -q --disable-pip-version-check awscli boto3 || die "pip install awscli boto3 failed"
fi
export FLOWGATE_TEST_VENV="$VENV"

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
log "building release binaries (the lab and integration tests use them)"
cargo build --release --locked --bins -q
export FLOWGATE_BIN="$FG_ROOT/target/release/flowgate" FLOWGATECTL_BIN="$FG_ROOT/target/release/flowgatectl"
log "unit, property and integration tests"
# One test binary at a time; inside the namespace tests a lock serialises the lab.
cargo test --workspace --locked --release -q -- --test-threads=2
log "benchmarks build and run a tiny case"
cargo bench --workspace --locked -q --no-run
if [ -x scripts/bench.sh ]; then scripts/bench.sh --smoke; fi
log "lab leftovers check"
leftover="$(ip netns list | grep -E '^fg-' || true)$(ip -o link show | grep -E ' fg-[cs]-(in|out)' || true)"
[ -z "$leftover" ] || die "namespaces or links left behind: $leftover"
log "all tests passed"
