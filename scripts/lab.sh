#!/usr/bin/env bash
# Flowgate's network-namespace lab: the appliance as a bump in the wire between two
# namespaces, with real programs talking through the DPDK data path.
#
#   scripts/lab.sh          the demo: up, real traffic, metrics, capture and flush, down
#   scripts/lab.sh up       build, create namespaces and links, start flowgate, print the
#                           lab's environment as `export KEY=VALUE` lines:
#                           eval "$(scripts/lab.sh up)" && flowgatectl stats
#                           (and, on stderr, the web console URL and sign-in keys)
#   scripts/lab.sh down     stop flowgate, remove every namespace and link (idempotent)
#   scripts/lab.sh restart  restart the appliance only (flow table lost, sessions stay open)
#   scripts/lab.sh env      print the lab's environment (`export KEY=VALUE` lines)
#   scripts/lab.sh fleet [up|down|env]  two zones behind flowgate-fleet (scripts/lab-fleet.sh)
#
# Config: ${FLOWGATE_LAB_CONFIG:-configs/lab.toml}. Addresses: 198.18.0.0/15 and 2001:2::/48 only.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

LAB_DIR=/tmp/flowgate-lab
SRC_CONFIG="${FLOWGATE_LAB_CONFIG:-$FG_ROOT/configs/lab.toml}"
# The lab runs from a copy of the config directory, so the demo can change the policy
# files and reload them without touching the repository.
RUN_CONFIG_DIR="$LAB_DIR/config"
CONFIG="$RUN_CONFIG_DIR/$(basename "$SRC_CONFIG")"
CLIENT_NS=fg-client
SERVER_NS=fg-server
CLIENT_IP4=198.18.0.1
SERVER_IP4=198.18.0.2
CLIENT_IP6=2001:2::1
SERVER_IP6=2001:2::2
PIDFILE="$LAB_DIR/flowgate.pid"

conf_value() { # conf_value KEY -> first 'KEY = "value"' in the config
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$SRC_CONFIG" | head -n1
}
API_ADDR="$(conf_value listen)"
API_ADDR="${API_ADDR:-127.0.0.1:8480}"
METRICS_ADDR="$(conf_value metrics_listen)"
METRICS_ADDR="${METRICS_ADDR:-$API_ADDR}"
# The API is HTTPS with the certificate flowgate generates in its state_dir at first start;
# health and metrics are plain HTTP on metrics_listen (configs/lab.toml sets one).
CA_FILE="$(conf_value state_dir)/tls/ca.pem"
CTL_BIN="${FLOWGATECTL_BIN:-$FG_ROOT/target/release/flowgatectl}"

lab_env() { # the lab's environment as `export KEY=VALUE` lines, for `eval "$(scripts/lab.sh up)"`
    local kv
    while IFS= read -r kv; do
        printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
    done <<ENV
CLIENT_NS=$CLIENT_NS
SERVER_NS=$SERVER_NS
CLIENT_IP4=$CLIENT_IP4
SERVER_IP4=$SERVER_IP4
CLIENT_IP6=$CLIENT_IP6
SERVER_IP6=$SERVER_IP6
FLOWGATE_API=https://$API_ADDR
FLOWGATE_CA_FILE=$CA_FILE
FLOWGATE_METRICS=http://$METRICS_ADDR/metrics
FLOWGATE_LOG_DIR=$LAB_DIR/log
FLOWGATE_CONFIG=$CONFIG
FLOWGATE_PID=$(cat "$PIDFILE" 2>/dev/null || echo "")
FLOWGATE_ACCESS_KEY_ID=$(conf_value access_key_id)
FLOWGATE_SECRET_ACCESS_KEY=$(conf_value secret_access_key)
FLOWGATE_REGION=$(conf_value region)
FIREWALL_ARN=$(conf_value firewall_arn)
FLOWGATE_ZONE=$(conf_value zone)
FLOWGATECTL=$CTL_BIN
ENV
    # `flowgatectl` by name, as the README runs it; $PATH expands in the caller's shell.
    printf 'export PATH=%q:"$PATH"\n' "$(dirname "$CTL_BIN")"
}

start_flowgate() {
    log "starting flowgate with $CONFIG"
    "$FLOWGATE_BIN" --config "$CONFIG" >>"$LAB_DIR/log/flowgate.out" 2>&1 &
    # Written atomically: `lab.sh down` (another process) may read it at any time.
    echo $! >"$PIDFILE.tmp" && mv -f "$PIDFILE.tmp" "$PIDFILE"
    local pid ok=""
    pid="$(cat "$PIDFILE")"
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        if curl -fsS -m 1 "http://$METRICS_ADDR/readyz" >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    if [ -z "$ok" ]; then
        tail -n 30 "$LAB_DIR/log/flowgate.out" >&2 || true
        down
        die "flowgate did not become ready"
    fi
    log "flowgate ready (pid $pid)"
}

stop_flowgate() {
    if [ -f "$PIDFILE" ]; then
        local pid
        pid="$(cat "$PIDFILE")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$PIDFILE"
    fi
}

down() {
    stop_flowgate
    for ns in "$CLIENT_NS" "$SERVER_NS"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    for l in fg-c-out fg-s-out fg-c-in fg-s-in; do ip link del "$l" 2>/dev/null || true; done
}

ns_side() { # ns_side NS INNER OUTER IP4 IP6
    local ns=$1 inner=$2 outer=$3 ip4=$4 ip6=$5
    ip netns add "$ns"
    ip link add "$inner" type veth peer name "$outer"
    ip link set "$inner" netns "$ns"
    # The outer end belongs to the appliance: up, no addresses, silent.
    sysctl -qw "net.ipv6.conf.$outer.disable_ipv6=1"
    ip link set "$outer" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$ip4/24" dev "$inner"
    ip -n "$ns" -6 addr add "$ip6/64" dev "$inner" nodad
    ip -n "$ns" link set "$inner" up
    # Frames leave veth with partial checksums; af_packet forwards them as they are, so
    # the receiving stack would drop them: compute checksums in software instead.
    ip netns exec "$ns" ethtool -K "$inner" tx off >/dev/null
}

up() {
    [ "$(id -u)" -eq 0 ] || die "the lab needs root (namespaces, veth, DPDK)"
    ensure_packages "${BUILD_PACKAGES[@]}" "${LAB_PACKAGES[@]}"
    "$FG_ROOT/scripts/build-console.sh" --no-test >&2
    build_release
    down
    rm -rf "$RUN_CONFIG_DIR"
    mkdir -p "$LAB_DIR/log" "$LAB_DIR/state" "$RUN_CONFIG_DIR"
    cp -r "$(dirname "$SRC_CONFIG")/." "$RUN_CONFIG_DIR/"
    log "creating namespaces $CLIENT_NS and $SERVER_NS"
    ns_side "$CLIENT_NS" fg-c-in fg-c-out "$CLIENT_IP4" "$CLIENT_IP6"
    ns_side "$SERVER_NS" fg-s-in fg-s-out "$SERVER_IP4" "$SERVER_IP6"
    start_flowgate
    console_banner
    lab_env
}

# The console's address and sign-in keys, on stderr (stdout is the `export KEY=VALUE` environment).
console_banner() {
    local api
    api="$(eval "$(lab_env)"; printf '%s' "$FLOWGATE_API")"
    log "web console: $api/console/  (trust the CA $CA_FILE; sign in with access key id $(conf_value access_key_id), secret $(conf_value secret_access_key))"
}

in_ns() { ip netns exec "$@"; }

metric_sum() { # metric_sum NAME [LABEL-FILTER] -> sum of matching samples
    curl -fsS "http://$METRICS_ADDR/metrics" | awk -v n="$1" -v f="${2:-}" \
        '$1 ~ "^"n"({|$)" && index($1, f) { s += $2 } END { printf "%d\n", s }'
}

step() { log "$*"; }

demo() {
    # One lab at a time on this machine (tests take the same lock around their lab use).
    if [ -z "${FLOWGATE_LAB_LOCKED:-}" ]; then
        exec 9>/tmp/flowgate-lab.lock
        flock -w 600 9 || die "another lab is running (lock /tmp/flowgate-lab.lock)"
    fi
    trap 'down' EXIT
    eval "$(up)"
    local fail=0 www="$LAB_DIR/www"
    mkdir -p "$www"
    head -c 20000000 /dev/urandom >"$www/blob.bin"
    echo "hello through flowgate" >"$www/index.html"

    step "HTTP: python3 -m http.server in $SERVER_NS, curl from $CLIENT_NS (IPv4 and IPv6)"
    in_ns "$SERVER_NS" python3 -m http.server 8080 --bind :: --directory "$www" >/dev/null 2>&1 &
    local web=$!
    for _ in $(seq 1 300); do in_ns "$SERVER_NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/8080" 2>/dev/null && break; sleep 0.1; done
    in_ns "$CLIENT_NS" curl -fsS -m 10 "http://$SERVER_IP4:8080/index.html" || { echo "curl v4 FAILED"; fail=1; }
    in_ns "$CLIENT_NS" curl -fsS -m 10 -g "http://[$SERVER_IP6]:8080/index.html" || { echo "curl v6 FAILED"; fail=1; }

    step "ping and ping -6 through the appliance"
    in_ns "$CLIENT_NS" ping -c 3 -i 0.2 -W 2 "$SERVER_IP4" | tail -n 2 || { echo "ping FAILED"; fail=1; }
    in_ns "$CLIENT_NS" ping -6 -c 3 -i 0.2 -W 2 "$SERVER_IP6" | tail -n 2 || { echo "ping6 FAILED"; fail=1; }

    step "bulk TCP: 20 MB over HTTP, then iperf3 for 3 s"
    in_ns "$CLIENT_NS" curl -fsS -m 30 -o /dev/null -w 'downloaded %{size_download} bytes in %{time_total} s (%{speed_download} B/s)\n' \
        "http://$SERVER_IP4:8080/blob.bin" || { echo "bulk download FAILED"; fail=1; }
    in_ns "$SERVER_NS" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    sleep 0.5
    in_ns "$CLIENT_NS" iperf3 -c "$SERVER_IP4" -p 5201 -t 3 -f m 2>&1 | grep -E 'sender|receiver' || { echo "iperf3 FAILED"; fail=1; }

    "$FG_ROOT/scripts/lab-story.sh" || fail=1

    step "metrics that moved"
    curl -fsS "http://$METRICS_ADDR/metrics" | grep -E '^flowgate_(rx_packets|tx_packets|flows_created|flows_active|midstream_packets|rsts_sent|flows_flushed)' | grep -v ' 0$' || true
    kill "$web" 2>/dev/null || true
    if [ "$fail" -ne 0 ]; then
        echo "--- flowgate output ---"; tail -n 50 "$LAB_DIR/log/flowgate.out" || true
        die "lab demo: some steps FAILED"
    fi
    log "lab demo passed"
}

case "${1:-demo}" in
    up) up ;;
    restart) # the appliance only (its flow table is lost; namespaces and sessions stay)
        FLOWGATE_BIN="${FLOWGATE_BIN:-$FG_ROOT/target/release/flowgate}"
        stop_flowgate; start_flowgate ;;
    down) down; log "lab down" ;;
    env) lab_env ;;
    demo) demo ;;
    fleet) shift; exec "$FG_ROOT/scripts/lab-fleet.sh" "$@" ;;
    *) die "usage: $0 [up|down|restart|env|fleet]" ;;
esac
