#!/usr/bin/env bash
# Flowgate's benchmark, side by side with dpdk-testpmd in one run, one worker core each
# (main lcore on CPU 0, forwarding lcore on CPU 1), --no-huge --no-pci vdevs only:
#
#   * forwarding: net_pcap,infinite_rx=1 (a flowgate-gen pcap replayed from memory) →
#     net_null,no-rx=1; testpmd io forwarding vs flowgate with the lab policy; 64-byte
#     TCP segments of 1 flow and of 1,000,000 flows (the table warmed by the first round);
#   * new flows per second with ~1,000 stateful rules: a pcap of 1,000,000 distinct SYNs
#     replayed into a 131,072-entry table, so every packet creates a flow (evicting one);
#   * capture and flush of the 1,000,000-flow table through the native API while
#     forwarding: API call → COMPLETED, and the forwarding rate during vs before.
#
# It ends with the machine-readable line
#   RESULT fwd_ratio_1flow=… fwd_ratio_1m=… mpps_1m=… new_flows_per_s=… capture_1m_s=… flush_1m_s=… fwd_during_op_ratio=…
#
# usage: scripts/bench.sh [--quick | --smoke] [--runs N]
#   (default) 3 runs of 10 s windows, medians reported; ~6 minutes
#   --quick   1 run of 4 s windows; under 3 minutes
#   --smoke   tiny (20k flows, 1 s windows): checks that everything builds and runs (CI)
# Environment: FLOWGATE_BIN / FLOWGATE_GEN_BIN to use prebuilt binaries (else builds).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
BENCH_LIB="$FG_ROOT/scripts/bench"

MODE=full
RUNS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) MODE=quick ;;
        --smoke) MODE=smoke ;;
        --runs) RUNS="$2"; shift ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
case "$MODE" in
    full)  WARM=3; WIN=10; RUNS=${RUNS:-3}; BIG=1000000 ;;
    quick) WARM=2; WIN=4;  RUNS=${RUNS:-1}; BIG=1000000 ;;
    smoke) WARM=1; WIN=1;  RUNS=${RUNS:-1}; BIG=20000 ;;
esac
NEWFLOW_TABLE=131072
[ "$BIG" -lt 1000000 ] && NEWFLOW_TABLE=4096

[ "$(id -u)" -eq 0 ] || die "scripts/bench.sh needs root (DPDK EAL)"
command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd not found (apt-get install dpdk)"
command -v curl >/dev/null || die "curl not found"

WORK="$(mktemp -d /tmp/fg-bench.XXXXXX)"
PIDS=()
PREFIXES=()
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for p in "${PREFIXES[@]}"; do rm -rf "/var/run/dpdk/$p"; done
    if [ "$rc" -ne 0 ]; then
        echo "bench failed (exit $rc); logs:" >&2
        tail -n 20 "$WORK"/*.log >&2 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- binaries
if [ -z "${FLOWGATE_BIN:-}" ] || [ -z "${FLOWGATE_GEN_BIN:-}" ]; then
    ensure_rust
    TARGET="${CARGO_TARGET_DIR:-$FG_ROOT/target}"
    log "building release binaries"
    (cd "$FG_ROOT" && cargo build --release --bins -q) || die "cargo build failed"
    FLOWGATE_BIN="${FLOWGATE_BIN:-$TARGET/release/flowgate}"
    FLOWGATE_GEN_BIN="${FLOWGATE_GEN_BIN:-$TARGET/release/flowgate-gen}"
fi
[ -x "$FLOWGATE_BIN" ] && [ -x "$FLOWGATE_GEN_BIN" ] || die "missing $FLOWGATE_BIN or $FLOWGATE_GEN_BIN"

# ---------------------------------------------------------------- traffic
log "generating pcaps (flowgate-gen)"
"$FLOWGATE_GEN_BIN" --flows 1 --packets 1024 --kind established --size 64 --seed 1 --out "$WORK/1flow.pcap" 2>/dev/null
"$FLOWGATE_GEN_BIN" --flows "$BIG" --kind established --size 64 --seed 2 --out "$WORK/big.pcap" 2>/dev/null
"$FLOWGATE_GEN_BIN" --flows "$BIG" --kind syn --size 64 --seed 3 --out "$WORK/syn.pcap" 2>/dev/null

# The lab policy, except that a TCP segment without a flow is picked up (continue) instead
# of rejected: the replayed pcaps are mid-connection segments, whose first round must
# create the flows that later rounds hit.
sed 's/^stream_exception_policy = .*/stream_exception_policy = "continue"/; s|^rules_file = .*|rules_file = "lab.rules"|' \
    "$FG_ROOT/configs/lab-policy.toml" >"$WORK/policy-lab.toml"
cp "$FG_ROOT/configs/lab.rules" "$WORK/lab.rules"
# ~1,000 stateful rules: 994 that the generated traffic (servers in 198.19.255.0/24) never
# matches, then the lab rules, so every new flow is checked against all of them.
python3 "$BENCH_LIB/rules.py" 994 "$FG_ROOT/configs/lab.rules" >"$WORK/rules1000.rules"
sed 's|^rules_file = .*|rules_file = "rules1000.rules"|' "$WORK/policy-lab.toml" >"$WORK/policy-1000.toml"
RULES_N=$(grep -cE '^(pass|drop|alert|reject)' "$WORK/rules1000.rules")

# Mbufs: net_pcap's infinite_rx copies the whole pcap into mbufs at start, plus headroom;
# without hugepages a 2 KiB mbuf costs ~4 KiB of EAL memory.
mbufs_for() { echo $(( $1 + 32768 )); }
mem_for() { echo $(( ($1 * 4096) / 1048576 + 256 )); }

# ---------------------------------------------------------------- testpmd
TP_N=0
# testpmd_mpps PCAP PACKETS: sets TP_MPPS (io forwarding, port 0 pcap → port 1 null).
# Not called in a subshell: it registers its process and prefix for the cleanup.
testpmd_mpps() {
    local pcap=$1 pkts=$2 mb; mb=$(mbufs_for "$pkts")
    TP_N=$((TP_N + 1))
    local prefix="fgb-tp-$$-$TP_N" fifo="$WORK/tp$TP_N.in" out="$WORK/testpmd$TP_N.log"
    PREFIXES+=("$prefix")
    mkfifo "$fifo"
    dpdk-testpmd --no-huge -m "$(mem_for "$mb")" --no-shconf --no-pci --file-prefix="$prefix" \
        --no-telemetry --log-level=error --lcores=0@0,1@1 \
        --vdev="net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev=net_null0,no-rx=1 \
        -- -i --forward-mode=io --nb-cores=1 --burst=32 --total-num-mbufs="$mb" \
        <"$fifo" >"$out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    exec 7>"$fifo"
    local t=0
    until grep -q "testpmd>" "$out" 2>/dev/null; do
        sleep 0.2; t=$((t + 1))
        kill -0 "$pid" 2>/dev/null || die "dpdk-testpmd exited at start: $(tail -5 "$out")"
        [ $t -lt 300 ] || die "dpdk-testpmd did not start in 60 s"
    done
    echo "start" >&7
    sleep "$WARM"
    echo "show port stats 1" >&7
    sleep "$WIN"
    echo "show port stats 1" >&7
    sleep 0.5
    echo "stop" >&7
    echo "quit" >&7
    exec 7>&-
    wait "$pid" || true
    PIDS=("${PIDS[@]/$pid}")
    # The second "Tx-pps" is the rate over the window (testpmd's own TSC timing).
    local pps
    pps=$(grep -o 'Tx-pps: *[0-9]*' "$out" | awk 'NR==2 {print $2}')
    [ -n "$pps" ] && [ "$pps" -gt 0 ] || die "no testpmd Tx-pps in $out: $(tail -5 "$out")"
    TP_MPPS=$(awk -v p="$pps" 'BEGIN { printf "%.3f", p / 1e6 }')
}

# ---------------------------------------------------------------- flowgate
FG_N=0
FG_PID=""
FG_API=""
# fg_start PCAP PACKETS POLICY TABLE_CAPACITY
fg_start() {
    local pcap=$1 pkts=$2 policy=$3 cap=$4 mb; mb=$(mbufs_for "$pkts")
    FG_N=$((FG_N + 1))
    local dir="$WORK/fg$FG_N" prefix="fgb-fg-$$-$FG_N"
    PREFIXES+=("$prefix")
    mkdir -p "$dir"
    cp "$WORK/$policy" "$WORK/lab.rules" "$WORK/rules1000.rules" "$dir/"
    FG_API="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    cat >"$dir/flowgate.toml" <<EOF
[appliance]
firewall_name = "flowgate-bench"
firewall_arn = "arn:aws:network-firewall:us-east-1:000000000000:firewall/flowgate-bench"
zone = "bench-zone"
state_dir = "state"
[eal]
args = ["--no-huge", "-m", "$(mem_for "$mb")", "--no-shconf", "--no-pci", "--no-telemetry",
        "--log-level=error", "--lcores=0@0,1@1", "--file-prefix=$prefix",
        "--vdev=net_pcap0,rx_pcap=$pcap,infinite_rx=1", "--vdev=net_null0,no-rx=1"]
mbufs = $mb
[[port_pair]]
name = "bench"
a = "net_pcap0"
b = "net_null0"
[workers]
lcores = [1]
burst = 32
[flow_table]
capacity_per_worker = $cap
[policy]
file = "$policy"
[mgmt]
listen = "$FG_API"
auth = "none"
# Loopback only: the benchmark measures the data path, not TLS.
plain_http = true
[logging]
flow_log = "flow.log"
alert_log = "alert.log"
audit_log = "audit.log"
[operations]
result_cap = 1000000
worker_timeout_ms = 30000
EOF
    (cd "$dir" && exec "$FLOWGATE_BIN" --config flowgate.toml) >"$WORK/flowgate$FG_N.log" 2>&1 &
    FG_PID=$!
    PIDS+=("$FG_PID")
    local t=0
    until curl -sf "http://$FG_API/readyz" >/dev/null 2>&1; do
        sleep 0.2; t=$((t + 1))
        kill -0 "$FG_PID" 2>/dev/null || die "flowgate exited at start: $(tail -5 "$WORK/flowgate$FG_N.log")"
        [ $t -lt 300 ] || die "flowgate not ready in 60 s"
    done
}

fg_stop() {
    kill -TERM "$FG_PID" 2>/dev/null || true
    local t=0
    while kill -0 "$FG_PID" 2>/dev/null; do
        sleep 0.2; t=$((t + 1))
        [ $t -lt 150 ] || { kill -KILL "$FG_PID" 2>/dev/null || true; break; }
    done
    wait "$FG_PID" 2>/dev/null || true
    PIDS=("${PIDS[@]/$FG_PID}")
}

# metric NAME → the sum of its samples (all label sets)
metric() {
    curl -sf "http://$FG_API/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.0f", s }'
}
now_s() { date +%s.%N; }
# rate NAME SECONDS → per-second increase of a counter over a window
rate() {
    local a b t0 t1
    a=$(metric "$1"); t0=$(now_s)
    sleep "$2"
    b=$(metric "$1"); t1=$(now_s)
    awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }'
}

# fg_operation capture|flush: sets OP_S (API call → final status) and OP_RATE (tx/s meanwhile)
fg_operation() {
    local out secs tx0 tx1 matched status
    out=$(python3 "$BENCH_LIB/op.py" "$FG_API" "$1") || die "$1 failed: $out"
    read -r secs tx0 tx1 matched status <<<"$out"
    [ "$status" = COMPLETED ] || die "$1 ended $status"
    OP_S=$secs
    OP_RATE=$(awk -v s="$secs" -v a="$tx0" -v b="$tx1" 'BEGIN { printf "%.0f", (b - a) / s }')
    echo "  $1: $matched flows matched in $OP_S s" >&2
}

mpps() { awk -v r="$1" 'BEGIN { printf "%.3f", r / 1e6 }'; }

step() { log "[${SECONDS}s] $*"; }
# ---------------------------------------------------------------- runs
declare -a TP1 FG1 TPB FGB NEWF CAP FLU DUR
step "mode $MODE: $RUNS run(s), ${WIN} s windows, $BIG flows, $RULES_N stateful rules; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$RUNS"); do
    step "run $r/$RUNS: 1 flow"
    testpmd_mpps "$WORK/1flow.pcap" 1024
    TP1+=("$TP_MPPS")
    fg_start "$WORK/1flow.pcap" 1024 policy-lab.toml 65536
    sleep "$WARM"
    FG1+=("$(mpps "$(rate flowgate_tx_packets_total "$WIN")")")
    fg_stop
    echo "  testpmd ${TP1[-1]} Mpps, flowgate ${FG1[-1]} Mpps" >&2

    step "run $r/$RUNS: $BIG flows (table warmed), capture and flush"
    testpmd_mpps "$WORK/big.pcap" "$BIG"
    TPB+=("$TP_MPPS")
    fg_start "$WORK/big.pcap" "$BIG" policy-lab.toml $(( BIG + BIG / 8 + 1024 ))
    sleep "$WARM"
    active=$(metric flowgate_flows_active)
    [ "$active" -ge $(( BIG * 99 / 100 )) ] || die "table not warmed: $active flows active, want $BIG"
    before=$(rate flowgate_tx_packets_total "$WIN")
    FGB+=("$(mpps "$before")")
    fg_operation capture; cap_s=$OP_S; cap_rate=$OP_RATE
    fg_operation flush; flu_s=$OP_S; flu_rate=$OP_RATE
    CAP+=("$cap_s"); FLU+=("$flu_s")
    # Forwarding during the operations, weighted by their durations, relative to before.
    DUR+=("$(awk -v a="$cap_s" -v ra="$cap_rate" -v b="$flu_s" -v rb="$flu_rate" -v r0="$before" \
        'BEGIN { printf "%.3f", (a * ra + b * rb) / (a + b) / r0 }')")
    fg_stop
    echo "  testpmd ${TPB[-1]} Mpps, flowgate ${FGB[-1]} Mpps ($active flows); capture ${cap_s} s, flush ${flu_s} s, rate during ${DUR[-1]}x" >&2

    step "run $r/$RUNS: new flows, $RULES_N rules"
    fg_start "$WORK/syn.pcap" "$BIG" policy-1000.toml "$NEWFLOW_TABLE"
    sleep "$WARM"
    NEWF+=("$(rate flowgate_flows_created_total "$WIN")")
    fg_stop
    echo "  ${NEWF[-1]} new flows/s" >&2
done

# ---------------------------------------------------------------- report
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minmax() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s..%s", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

m_tp1=$(median "${TP1[@]}"); m_fg1=$(median "${FG1[@]}")
m_tpb=$(median "${TPB[@]}"); m_fgb=$(median "${FGB[@]}")
m_new=$(median "${NEWF[@]}"); m_cap=$(median "${CAP[@]}"); m_flu=$(median "${FLU[@]}"); m_dur=$(median "${DUR[@]}")
echo
printf '%-44s %12s %18s\n' "measurement ($MODE, $RUNS runs)" median "min..max"
printf '%-44s %12s %18s\n' "testpmd io, 1 flow (Mpps)" "$m_tp1" "$(minmax "${TP1[@]}")"
printf '%-44s %12s %18s\n' "flowgate, 1 flow (Mpps)" "$m_fg1" "$(minmax "${FG1[@]}")"
printf '%-44s %12s %18s\n' "testpmd io, $BIG flows (Mpps)" "$m_tpb" "$(minmax "${TPB[@]}")"
printf '%-44s %12s %18s\n' "flowgate, $BIG flows (Mpps)" "$m_fgb" "$(minmax "${FGB[@]}")"
printf '%-44s %12s %18s\n' "new flows/s, $RULES_N rules" "$m_new" "$(minmax "${NEWF[@]}")"
printf '%-44s %12s %18s\n' "capture of $BIG flows (s)" "$m_cap" "$(minmax "${CAP[@]}")"
printf '%-44s %12s %18s\n' "flush of $BIG flows (s)" "$m_flu" "$(minmax "${FLU[@]}")"
printf '%-44s %12s %18s\n' "forwarding during ops / before" "$m_dur" "$(minmax "${DUR[@]}")"
echo "RESULT fwd_ratio_1flow=$(ratio "$m_fg1" "$m_tp1") fwd_ratio_1m=$(ratio "$m_fgb" "$m_tpb") mpps_1m=$m_fgb new_flows_per_s=$m_new capture_1m_s=$m_cap flush_1m_s=$m_flu fwd_during_op_ratio=$m_dur"
