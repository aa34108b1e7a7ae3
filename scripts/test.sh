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

# The AWS SDK for JavaScript v3 (from npm, versions pinned by package-lock.json) drives the
# Smithy RPC v2 CBOR protocol; it needs Node.js >= 20 (this machine kind ships it).
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is needed for the AWS SDK for JavaScript (found $(node --version))"
SDK_DIR="$FG_ROOT/tests/helpers/sdk"
if [ ! -d "$SDK_DIR/node_modules/@aws-sdk/client-network-firewall" ]; then
    log "installing the AWS SDK for JavaScript into $SDK_DIR"
    npm ci --prefix "$SDK_DIR" --no-audit --no-fund --silent || die "npm ci in $SDK_DIR failed"
fi

# The web console (console/, TypeScript): npm ci from its lock file, unit tests (vitest:
# the SigV4 signer against AWS's test suite, form rules), then the build that cargo embeds
# into the binary. Before cargo, so clippy and the binaries see the real assets.
"$FG_ROOT/scripts/build-console.sh"
# Debian's Chromium drives the console's end-to-end tests (tests/lab_e2e.rs: served by the
# appliance, and by flowgate-fleet with its zone selector).
ensure_packages chromium

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
log "building release binaries (the lab and integration tests use them)"
cargo build --release --locked --bins -q
export FLOWGATE_BIN="$FG_ROOT/target/release/flowgate" FLOWGATECTL_BIN="$FG_ROOT/target/release/flowgatectl"
log "unit, property and integration tests"
# One test binary at a time; inside the namespace tests a lock serialises the lab.
cargo test --workspace --locked --release -q --no-fail-fast -- --test-threads=2
log "benchmarks build and run a tiny case"
cargo bench --workspace --locked -q --no-run
if [ -x scripts/bench.sh ]; then scripts/bench.sh --smoke; fi
log "lab leftovers check"
leftover="$(ip netns list | grep -E '^fg-' || true)$(ip -o link show | grep -E ' fg-[cs]-(in|out)' || true)"
[ -z "$leftover" ] || die "namespaces or links left behind: $leftover"
log "all tests passed"
