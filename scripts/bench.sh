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
#     forwarding: API call → COMPLETED, and the forwarding rate during vs before; also a
#     capture and a flush filtered to src 198.18.0.0/16 (half of the flows);
#   * Linux conntrack side by side: the same 1,000,000 flows as UDP into a namespace's
#     conntrack (veth, nftables `ct state new accept`, local delivery so entries are
#     confirmed), then `conntrack -L`, `-L -s 198.18.0.0/16`, `-D -s 198.18.0.0/16`, `-F`
#     timed (nf_conntrack_max and the hash size raised for the run, restored after).
#
# It ends with the machine-readable line
#   RESULT fwd_ratio_1flow=… fwd_ratio_1m=… mpps_1m=… new_flows_per_s=… capture_1m_s=… flush_1m_s=… fwd_during_op_ratio=…
#          capture_filtered_s=… flush_filtered_s=… ct_list_s=… ct_list_filtered_s=… ct_delete_filtered_s=… ct_flush_s=…
#          ct_vs_capture=… ct_vs_capture_filtered=… ct_vs_flush_filtered=… ct_vs_flush=…
#          ipp_1flow=… ipp_1m=… ipp_new_flow=… ipp_evict=… ipp_capture=… ipp_flush_all=…
#   (ct_vs_X = conntrack's time / Flowgate's: above 1 means Flowgate is faster; ipp_X =
#   instructions per packet or per scanned flow under callgrind, scripts/bench/ipp.sh)
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
        -h|--help) sed -n '2,/^# Environment/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
ensure_packages conntrack nftables iproute2

# ---------------------------------------------------------------- Linux conntrack
CT_MAX_PATH=/proc/sys/net/netfilter/nf_conntrack_max
CT_HASH_PATH=/sys/module/nf_conntrack/parameters/hashsize
# ct_raise_limits FLOWS: room for FLOWS entries in the (global) conntrack limits; the old
# values come back in ct_restore_limits (also on failure, from the cleanup).
ct_raise_limits() {
    local want=$(( $1 * 2 )) buckets=1
    while [ "$buckets" -lt "$1" ]; do buckets=$(( buckets * 2 )); done
    [ -w "$CT_MAX_PATH" ] && [ -w "$CT_HASH_PATH" ] || die "nf_conntrack not loaded (modprobe nf_conntrack) or its limits are not writable"
    [ -n "$CT_RESTORE" ] || CT_RESTORE="$(cat "$CT_MAX_PATH") $(cat "$CT_HASH_PATH")"
    [ "$(cat "$CT_MAX_PATH")" -ge "$want" ] || echo "$want" >"$CT_MAX_PATH"
    [ "$(cat "$CT_HASH_PATH")" -ge "$buckets" ] || echo "$buckets" >"$CT_HASH_PATH"
}
ct_restore_limits() {
    [ -n "$CT_RESTORE" ] || return 0
    local max hash
    read -r max hash <<<"$CT_RESTORE"
    echo "$hash" >"$CT_HASH_PATH" 2>/dev/null || true
    echo "$max" >"$CT_MAX_PATH" 2>/dev/null || true
    CT_RESTORE=""
}
# timed CMD…: runs CMD, sets T_S to its wall-clock seconds and T_ERR to its stderr.
timed() {
    local t0 t1
    t0=$(now_s)
    "$@" >/dev/null 2>"$WORK/timed.err" || die "$* failed: $(tail -3 "$WORK/timed.err")"
    t1=$(now_s)
    T_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    T_ERR=$(cat "$WORK/timed.err")
}
# shown_count TEXT: N of conntrack's "N flow entries have been shown/deleted."
shown_count() { grep -o '[0-9]* flow entries' <<<"$1" | awk '{ print $1 }'; }
# ct_run PCAP FLOWS: fills a fresh namespace's conntrack with the UDP flows of PCAP
# (replayed from a second namespace over a veth, delivered locally: the servers'
# 198.19.255.0/24 is a local route in the receiver, and the nftables rule
# `ct state new accept` in its input hook makes conntrack confirm every flow), then times
# conntrack -L, -L -s 198.18.0.0/16, -D -s 198.18.0.0/16 and -F. Sets CT_L CT_LS CT_DS CT_F.
ct_run() {
    local pcap=$1 flows=$2 tx="fgb-ct-tx-$$" rx="fgb-ct-rx-$$" n shown
    # The lab lock: namespaces and the global conntrack limits are shared with the labs.
    exec 8>/tmp/flowgate-lab.lock
    flock 8
    ct_raise_limits "$flows"
    NETNS+=("$tx" "$rx")
    ip netns add "$tx"
    ip netns add "$rx"
    ip link add fgbct0 netns "$tx" type veth peer name fgbct1 netns "$rx"
    # The receiver takes the frames' destination MAC as its own, so they are for this host.
    local mac
    mac=$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(64); print(":".join(f"{b:02x}" for b in d[40:46]))' "$pcap")
    ip -n "$rx" link set fgbct1 address "$mac"
    ip -n "$tx" link set fgbct0 txqueuelen 10000 up
    ip -n "$rx" link set fgbct1 up
    ip -n "$rx" link set lo up
    ip -n "$rx" route add local 198.19.255.0/24 dev lo
    ip netns exec "$rx" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.fgbct1.rp_filter=0 \
        net.netfilter.nf_conntrack_udp_timeout=3600 net.ipv4.icmp_ratelimit=1000000000
    ip netns exec "$rx" nft -f - <<'NFT'
table inet fgb_bench {
    chain input {
        type filter hook input priority filter; policy accept;
        ct state new accept
    }
}
NFT
    local round
    for round in 1 2 3; do
        ip netns exec "$tx" python3 "$FG_ROOT/scripts/lab/replay.py" fgbct0 "$pcap" >"$WORK/ct-fill.log" 2>&1 \
            || die "replay into conntrack failed: $(tail -3 "$WORK/ct-fill.log")"
        n=$(ip netns exec "$rx" conntrack -C)
        echo "  conntrack: $n entries after replay $round ($(cat "$WORK/ct-fill.log"))" >&2
        # Frames the veth backlog dropped are sent again (existing flows are only refreshed).
        [ "$n" -lt $(( flows * 99 / 100 )) ] || break
    done
    [ "$n" -ge $(( flows * 99 / 100 )) ] || die "conntrack holds $n entries, want $flows"
    timed ip netns exec "$rx" conntrack -L
    CT_L=$T_S; shown=$(shown_count "$T_ERR")
    echo "  conntrack -L: $shown entries in $CT_L s" >&2
    timed ip netns exec "$rx" conntrack -L -s 198.18.0.0/16
    CT_LS=$T_S; shown=$(shown_count "$T_ERR")
    echo "  conntrack -L -s 198.18.0.0/16: $shown entries in $CT_LS s" >&2
    timed ip netns exec "$rx" conntrack -D -s 198.18.0.0/16
    CT_DS=$T_S; shown=$(shown_count "$T_ERR")
    echo "  conntrack -D -s 198.18.0.0/16: $shown entries deleted in $CT_DS s" >&2
    # Refilled, so that -F empties the whole table as Flowgate's full flush does.
    ip netns exec "$tx" python3 "$FG_ROOT/scripts/lab/replay.py" fgbct0 "$pcap" >"$WORK/ct-fill.log" 2>&1 \
        || die "replay into conntrack failed: $(tail -3 "$WORK/ct-fill.log")"
    n=$(ip netns exec "$rx" conntrack -C)
    timed ip netns exec "$rx" conntrack -F
    CT_F=$T_S
    echo "  conntrack -F: $n entries in $CT_F s (left: $(ip netns exec "$rx" conntrack -C))" >&2
    ip netns del "$tx"
    ip netns del "$rx"
    NETNS=()
    ct_restore_limits
    flock -u 8
    exec 8>&-
}

WORK="$(mktemp -d /tmp/fg-bench.XXXXXX)"
PIDS=()
PREFIXES=()
NETNS=()
CT_RESTORE=""
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for p in "${PREFIXES[@]}"; do rm -rf "/var/run/dpdk/$p"; done
    for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
    ct_restore_limits
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
# Flowgate runs from its own work directory: relative paths must not change meaning there.
FLOWGATE_BIN=$(realpath "$FLOWGATE_BIN"); FLOWGATE_GEN_BIN=$(realpath "$FLOWGATE_GEN_BIN")

# ---------------------------------------------------------------- traffic
log "generating pcaps (flowgate-gen)"
"$FLOWGATE_GEN_BIN" --flows 1 --packets 1024 --kind established --size 64 --seed 1 --out "$WORK/1flow.pcap" 2>/dev/null
"$FLOWGATE_GEN_BIN" --flows "$BIG" --kind established --size 64 --seed 2 --out "$WORK/big.pcap" 2>/dev/null
"$FLOWGATE_GEN_BIN" --flows "$BIG" --kind syn --size 64 --seed 3 --out "$WORK/syn.pcap" 2>/dev/null
# The same flows (sources, ports, servers) as UDP datagrams, for Linux conntrack.
"$FLOWGATE_GEN_BIN" --flows "$BIG" --kind udp --size 64 --seed 2 --out "$WORK/udp.pcap" 2>/dev/null

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

# fg_operation capture|flush [SRC_CIDR]: sets OP_S (API call → final status), OP_RATE
# (tx/s meanwhile) and OP_MATCHED; without SRC_CIDR the filter matches every flow.
fg_operation() {
    local out secs tx0 tx1 matched status
    out=$(python3 "$BENCH_LIB/op.py" "$FG_API" "$@") || die "$* failed: $out"
    read -r secs tx0 tx1 matched status <<<"$out"
    [ "$status" = COMPLETED ] || die "$* ended $status"
    OP_S=$secs
    OP_MATCHED=$matched
    OP_RATE=$(awk -v s="$secs" -v a="$tx0" -v b="$tx1" 'BEGIN { printf "%.0f", (b - a) / s }')
    echo "  $*: $matched flows matched in $OP_S s" >&2
}
# wait_refilled: the replayed pcap recreates flushed flows; waits until the table is full again.
wait_refilled() {
    local t=0
    until [ "$(metric flowgate_flows_active)" -ge $(( BIG * 99 / 100 )) ]; do
        sleep 0.1; t=$((t + 1))
        [ $t -lt 600 ] || die "table not refilled after a flush: $(metric flowgate_flows_active) flows"
    done
}

mpps() { awk -v r="$1" 'BEGIN { printf "%.3f", r / 1e6 }'; }

step() { log "[${SECONDS}s] $*"; }
# ---------------------------------------------------------------- runs
declare -a TP1 FG1 TPB FGB NEWF CAP FLU DUR CAPF FLUF CTL CTLS CTDS CTF
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
    fg_operation capture 198.18.0.0/16; CAPF+=("$OP_S")
    fg_operation flush 198.18.0.0/16; FLUF+=("$OP_S")
    wait_refilled
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

    step "run $r/$RUNS: Linux conntrack, $BIG UDP flows"
    ct_run "$WORK/udp.pcap" "$BIG"
    CTL+=("$CT_L"); CTLS+=("$CT_LS"); CTDS+=("$CT_DS"); CTF+=("$CT_F")
done

# ---------------------------------------------------------------- instructions per packet
step "instructions per packet (callgrind)"
IPP_LINE=$("$BENCH_LIB/ipp.sh" $([ "$MODE" = smoke ] && echo --smoke)) || die "scripts/bench/ipp.sh failed"
IPP_FIELDS=${IPP_LINE#IPP }

# ---------------------------------------------------------------- report
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minmax() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s..%s", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "inf" }'; }

m_tp1=$(median "${TP1[@]}"); m_fg1=$(median "${FG1[@]}")
m_tpb=$(median "${TPB[@]}"); m_fgb=$(median "${FGB[@]}")
m_new=$(median "${NEWF[@]}"); m_cap=$(median "${CAP[@]}"); m_flu=$(median "${FLU[@]}"); m_dur=$(median "${DUR[@]}")
m_capf=$(median "${CAPF[@]}"); m_fluf=$(median "${FLUF[@]}")
m_ctl=$(median "${CTL[@]}"); m_ctls=$(median "${CTLS[@]}"); m_ctds=$(median "${CTDS[@]}"); m_ctf=$(median "${CTF[@]}")
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
printf '%-44s %12s %18s\n' "capture, src 198.18.0.0/16 (s)" "$m_capf" "$(minmax "${CAPF[@]}")"
printf '%-44s %12s %18s\n' "flush, src 198.18.0.0/16 (s)" "$m_fluf" "$(minmax "${FLUF[@]}")"
printf '%-44s %12s %18s\n' "conntrack -L, $BIG flows (s)" "$m_ctl" "$(minmax "${CTL[@]}")"
printf '%-44s %12s %18s\n' "conntrack -L -s 198.18.0.0/16 (s)" "$m_ctls" "$(minmax "${CTLS[@]}")"
printf '%-44s %12s %18s\n' "conntrack -D -s 198.18.0.0/16 (s)" "$m_ctds" "$(minmax "${CTDS[@]}")"
printf '%-44s %12s %18s\n' "conntrack -F, $BIG flows (s)" "$m_ctf" "$(minmax "${CTF[@]}")"
echo "RESULT fwd_ratio_1flow=$(ratio "$m_fg1" "$m_tp1") fwd_ratio_1m=$(ratio "$m_fgb" "$m_tpb") mpps_1m=$m_fgb new_flows_per_s=$m_new capture_1m_s=$m_cap flush_1m_s=$m_flu fwd_during_op_ratio=$m_dur\
 capture_filtered_s=$m_capf flush_filtered_s=$m_fluf ct_list_s=$m_ctl ct_list_filtered_s=$m_ctls ct_delete_filtered_s=$m_ctds ct_flush_s=$m_ctf\
 ct_vs_capture=$(ratio "$m_ctl" "$m_cap") ct_vs_capture_filtered=$(ratio "$m_ctls" "$m_capf") ct_vs_flush_filtered=$(ratio "$m_ctds" "$m_fluf") ct_vs_flush=$(ratio "$m_ctf" "$m_flu")\
 $IPP_FIELDS"
