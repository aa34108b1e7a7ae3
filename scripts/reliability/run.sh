#!/usr/bin/env bash
# Runs the reliability scenarios at scale (outside CI) and prints their figure lines
# (FLOOD / FAULTS / CRASH / API) for RELIABILITY.md. Needs root (DPDK EAL).
#
#   scripts/reliability/run.sh [flood|faults|mgmt_death|api|lab_flood]...   (default: all)
#
# Scale knobs (environment): FG_REL_FLOOD_FLOWS (default 1000000 new flows offered),
# FG_REL_API_CLIENTS (16), FG_REL_API_SECS (20), FG_REL_API_SLOW (24 slowloris sockets).
# CI runs the same tests at their short defaults through `cargo test` (scripts/test.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[ "$(id -u)" -eq 0 ] || { echo "reliability scenarios need root (DPDK EAL)" >&2; exit 1; }
cd "$ROOT"
export FG_REL_REPORT=1
export FG_REL_FLOOD_FLOWS="${FG_REL_FLOOD_FLOWS:-1000000}"
export FG_REL_API_CLIENTS="${FG_REL_API_CLIENTS:-16}" FG_REL_API_SECS="${FG_REL_API_SECS:-20}" \
    FG_REL_API_SLOW="${FG_REL_API_SLOW:-24}"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(flood faults mgmt_death api lab_flood)
cargo build --release --locked --bins -q
export FLOWGATE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/flowgate"
for s in "${scenarios[@]}"; do
    case "$s" in
        flood|faults|mgmt_death|api) ;;
        lab_flood) # the namespace lab: FG_LAB_FLOOD_FLOWS flows offered (default 2,000,000)
            echo "== reliability: $s" >&2
            FG_LAB_FLOOD_FLOWS="${FG_LAB_FLOOD_FLOWS:-2000000}" flock -w 900 /tmp/flowgate-lab.lock \
                env FLOWGATE_LAB_LOCKED=1 "$ROOT/scripts/tests/lab-flood.sh" 2>&1 |
                tee /tmp/flowgate-reliability-lab_flood.log | grep -E '^(FLOOD-LAB|FAILED)|sent ' || true
            grep -q 'lab flood test passed' /tmp/flowgate-reliability-lab_flood.log ||
                { echo "reliability: $s FAILED (log: /tmp/flowgate-reliability-lab_flood.log)" >&2; exit 1; }
            continue ;;
        *) echo "unknown scenario $s (flood|faults|mgmt_death|api|lab_flood)" >&2; exit 2 ;;
    esac
    echo "== reliability: $s" >&2
    cargo test --release --locked -q --test "reliability_$s" -- --nocapture --test-threads=1 2>&1 |
        tee "/tmp/flowgate-reliability-$s.log" | grep -E '^(FLOOD|CRASH|FAULTS|MGMT|API)[A-Z_-]* |test result|panicked' || true
    grep -q 'test result: ok' "/tmp/flowgate-reliability-$s.log" ||
        { echo "reliability: $s FAILED (log: /tmp/flowgate-reliability-$s.log)" >&2; exit 1; }
done
