#!/usr/bin/env bash
# Instructions per packet of Flowgate's burst engine, counted by callgrind (deterministic:
# the same count on a quiet or a loaded machine, unlike wall-clock). Runs each case of the
# `ipp` bench binary (dataplane/benches/ipp.rs) under
#   valgrind --tool=callgrind --toggle-collect='*ipp_measured*'
# so that only the measured region (not the table warm-up) is counted, and divides the
# collected instructions (Ir) by the packets or flows it handled.
#
# usage: scripts/bench/ipp.sh [--smoke]
#   (default)  1 flow; 1,000,000 flows; 65,536 new flows against ~1,000 rules, into a
#              fresh table and into a full 131,072-entry one (each evicting a flow, as in
#              the appliance benchmark); capture and flush-all scans of 1,000,000 flows
#   --smoke    the same cases on tiny tables (CI: checks that it builds and runs)
# Prints a table, then
#   IPP ipp_1flow=… ipp_1m=… ipp_new_flow=… ipp_evict=… ipp_capture=… ipp_flush_all=…
# Environment: IPP_BIN to use a prebuilt bench binary.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

SMOKE=0
case "${1:-}" in
    --smoke) SMOKE=1 ;;
    "") ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
esac
ensure_packages valgrind

if [ -z "${IPP_BIN:-}" ]; then
    ensure_rust
    log "building the ipp bench"
    IPP_BIN=$(cd "$FG_ROOT" && cargo bench -p dataplane --bench ipp --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "ipp" and m.get("executable"):
        print(m["executable"])')
fi
[ -x "$IPP_BIN" ] || die "ipp bench binary not built ($IPP_BIN)"

OUT="$(mktemp -d /tmp/fg-ipp.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT

if [ "$SMOKE" = 1 ]; then
    BIG=2000; PKTS=2048; EVICT_TABLE=1024
else
    BIG=1000000; PKTS=65536; EVICT_TABLE=131072
fi
# name case flows packets
CASES=(
    "1flow one_flow 1 $PKTS"
    "1m table $BIG $PKTS"
    "new_flow new_flows 0 $PKTS"
    "evict evict $EVICT_TABLE $PKTS"
    "capture capture $BIG 0"
    "flush_all flush_all $BIG 0"
)
declare -A IPP
printf '%-12s %-10s %10s %14s %10s\n' name case units instructions "per unit" >&2
for c in "${CASES[@]}"; do
    read -r name case flows packets <<<"$c"
    out="$OUT/callgrind.$name"
    stdout=$(valgrind --tool=callgrind --toggle-collect='*ipp_measured*' --callgrind-out-file="$out" \
        "$IPP_BIN" "$case" "$flows" "$packets" 2>"$OUT/valgrind.$name.log") \
        || die "callgrind $case failed: $(tail -5 "$OUT/valgrind.$name.log")"
    units=$(grep -o 'units=[0-9]*' <<<"$stdout" | cut -d= -f2)
    ir=$(awk '/^(totals|summary):/ { print $2; exit }' "$out")
    [ -n "$units" ] && [ "$units" -gt 0 ] && [ -n "$ir" ] || die "no count for $case: $stdout"
    IPP[$name]=$(awk -v i="$ir" -v u="$units" 'BEGIN { printf "%.1f", i / u }')
    printf '%-12s %-10s %10s %14s %10s\n' "$name" "$case" "$units" "$ir" "${IPP[$name]}" >&2
done
echo "IPP ipp_1flow=${IPP[1flow]} ipp_1m=${IPP[1m]} ipp_new_flow=${IPP[new_flow]} ipp_evict=${IPP[evict]} ipp_capture=${IPP[capture]} ipp_flush_all=${IPP[flush_all]}"
