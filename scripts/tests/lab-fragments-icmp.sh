#!/usr/bin/env bash
# Namespace test of fragments and ICMP errors through the appliance (issue [1/6], items
# 5 and 6), with real programs and the kernel's own fragmentation and ICMP:
#  - a 4,000-byte UDP datagram (fragmented by the sender's kernel) crosses when its port
#    is allowed, and none of its fragments reach the server when it is denied (the
#    server's reassembly counters do not move), over IPv4 and IPv6;
#  - `ping -M do` with a too-big size gets its "fragmentation needed" / "packet too big"
#    back through a drop_strict policy: the client's kernel learns the path MTU;
#  - `ping -t 1` towards a host beyond a router gets its "time exceeded" back.
# Topology: fg-client — flowgate — fg-server (a router) — fg-far, the last link with a
# 1,280-byte MTU. Brings the lab up and down itself; run under the lab lock.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
LAB="$FG_ROOT/scripts/lab.sh"
FAR_NS=fg-far
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    ip netns pids "$FAR_NS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$FAR_NS" 2>/dev/null || true
    "$LAB" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
eval "$("$LAB" up)"
export FLOWGATE_API FLOWGATE_CA_FILE FLOWGATE_ACCESS_KEY_ID FLOWGATE_SECRET_ACCESS_KEY FLOWGATE_REGION
UDP="$FG_ROOT/scripts/lab/udp_datagram.py"
W=/tmp/flowgate-lab/wire-test; rm -rf "$W"; mkdir -p "$W"
POL="$(dirname "$FLOWGATE_CONFIG")"
FAR_IP4=198.18.1.2
FAR_IP6=2001:2:1::2
fail() { printf 'FAILED: %s\n' "$*" >&2; tail -n 20 /tmp/flowgate-lab/log/flowgate.out >&2 || true; exit 1; }
metrics() { curl -fsS "$FLOWGATE_METRICS"; }
metric() { # metric NAME [LABEL-FILTER] -> integer sum (whole page read first: pipefail-safe)
    local page; page="$(metrics)"
    awk -v n="$1" -v f="${2:-}" '$1 ~ "^"n"({|$)" && index($1, f) { s += $2 } END { printf "%d\n", s }' <<<"$page"
}
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds or the deadline.
wait_for() {
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || fail "timed out ($secs s) waiting for: $what"
        sleep 0.2
    done
}
in_client() { ip netns exec "$CLIENT_NS" "$@"; }
in_server() { ip netns exec "$SERVER_NS" "$@"; }

log "router: $SERVER_NS forwards to $FAR_NS over a 1,280-byte-MTU link"
ip netns add "$FAR_NS"
ip link add fg-r-in type veth peer name fg-far-in
ip link set fg-r-in netns "$SERVER_NS"
ip link set fg-far-in netns "$FAR_NS"
ip -n "$SERVER_NS" link set fg-r-in mtu 1280 up
ip -n "$SERVER_NS" addr add 198.18.1.1/24 dev fg-r-in
ip -n "$SERVER_NS" -6 addr add 2001:2:1::1/64 dev fg-r-in nodad
ip -n "$FAR_NS" link set lo up
ip -n "$FAR_NS" link set fg-far-in mtu 1280 up
ip -n "$FAR_NS" addr add "$FAR_IP4/24" dev fg-far-in
ip -n "$FAR_NS" -6 addr add "$FAR_IP6/64" dev fg-far-in nodad
in_server sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n "$FAR_NS" route add default via 198.18.1.1
ip -n "$FAR_NS" -6 route add default via 2001:2:1::1
ip -n "$CLIENT_NS" route add 198.18.1.0/24 via "$SERVER_IP4"
ip -n "$CLIENT_NS" -6 route add 2001:2:1::/64 via "$SERVER_IP6"
# Neighbour discovery is ICMPv6, which drop_strict drops like anything unlisted: the two
# sides of the appliance know each other statically (ARP passes as non-IP).
CMAC="$(ip -n "$CLIENT_NS" -j link show fg-c-in | jq -r '.[0].address')"
SMAC="$(ip -n "$SERVER_NS" -j link show fg-s-in | jq -r '.[0].address')"
ip -n "$CLIENT_NS" -6 neigh replace "$SERVER_IP6" lladdr "$SMAC" dev fg-c-in nud permanent
ip -n "$SERVER_NS" -6 neigh replace "$CLIENT_IP6" lladdr "$CMAC" dev fg-s-in nud permanent

log "policy: strict order, UDP 5001 and client→far ICMP allowed, everything else drop_strict"
cp "$FG_ROOT/configs/policies/lab-wire-strict.toml" "$POL/lab-policy.toml"
"$FLOWGATECTL" policy reload >/dev/null || fail "strict policy refused"

# Reassembly requests the server's kernel saw (any fragment reaching it counts).
reasm() {
    if [ "$1" = 4 ]; then
        in_server awk '/^Ip:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["ReasmReqds"] }' /proc/net/snmp
    else
        in_server awk '$1 == "Ip6ReasmReqds" { print $2 }' /proc/net/snmp6
    fi
}
status_is() { grep -q "^$2" "$1" 2>/dev/null; }

for fam in 4 6; do
    if [ "$fam" = 4 ]; then dst="$SERVER_IP4"; else dst="$SERVER_IP6"; fi
    log "IPv$fam: a 4,000-byte UDP datagram to an allowed port crosses, fragmented"
    in_server python3 "$UDP" recv 5001 --status "$W/allowed$fam" --timeout 30 >/dev/null 2>&1 &
    wait_for 10 "receiver ready" status_is "$W/allowed$fam" ready
    r0="$(reasm "$fam")"
    in_client python3 "$UDP" send "$dst" 5001 4000
    wait_for 15 "the datagram on the server" status_is "$W/allowed$fam" "got 4000"
    r1="$(reasm "$fam")"
    [ "$((r1 - r0))" -ge 3 ] || fail "IPv$fam: the server reassembled $((r1 - r0)) fragments, expected 3"
    cat "$W/allowed$fam"

    log "IPv$fam: to a denied port, none of its fragments cross"
    # Not through in_server: $! must be the receiver itself (ip netns exec execs it).
    ip netns exec "$SERVER_NS" python3 "$UDP" recv 5002 --status "$W/denied$fam" --timeout 30 >/dev/null 2>&1 &
    denied_rx=$!
    wait_for 10 "receiver ready" status_is "$W/denied$fam" ready
    d0="$(metric flowgate_fragments_total 'outcome="dropped_with_first"')"
    r0="$(reasm "$fam")"
    in_client python3 "$UDP" send "$dst" 5002 4000
    # The first fragment is denied by drop_strict; the two later ones are dropped with it.
    dropped_all() { [ "$(( $(metric flowgate_fragments_total 'outcome="dropped_with_first"') - d0 ))" -ge 2 ]; }
    wait_for 15 "the later fragments dropped with their first" dropped_all
    r1="$(reasm "$fam")"
    [ "$r1" = "$r0" ] || fail "IPv$fam: $((r1 - r0)) fragments of a denied datagram reached the server"
    status_is "$W/denied$fam" ready || fail "IPv$fam: denied datagram delivered: $(cat "$W/denied$fam")"
    # Nothing came: stop the receiver so that the next family can bind port 5002.
    kill "$denied_rx" 2>/dev/null || true
    wait "$denied_rx" 2>/dev/null || true
done
four_followed() { [ "$(metric flowgate_fragments_total 'outcome="followed"')" -ge 4 ]; }
wait_for 10 "4 later fragments that followed their first" four_followed
followed="$(metric flowgate_fragments_total 'outcome="followed"')"

log "path MTU discovery through drop_strict: ping -M do -s 1400 beyond a 1,280-byte link"
in_client ping -c 1 -W 2 "$FAR_IP4" >/dev/null || fail "far host unreachable with small pings"
pmtu_learned() {
    in_client ping -M do -s 1400 -c 1 -W 1 "$1" >/dev/null 2>&1 || true
    ip -n "$CLIENT_NS" route get "$1" | grep -q "mtu 1280"
}
wait_for 20 "IPv4 path MTU 1280 learned from fragmentation-needed" pmtu_learned "$FAR_IP4"
ip -n "$CLIENT_NS" route get "$FAR_IP4"
in_client ping -6 -c 1 -W 2 "$FAR_IP6" >/dev/null || fail "far host unreachable over IPv6"
wait_for 20 "IPv6 path MTU 1280 learned from packet-too-big" pmtu_learned "$FAR_IP6"
ip -n "$CLIENT_NS" -6 route get "$FAR_IP6"

log "TTL expiry: ping -t 1 towards the far host gets time-exceeded from the router"
ttl_exceeded() {
    local out
    out="$(in_client ping "$1" -c 1 -t 1 -W 1 "$2" 2>&1 || true)"
    grep -Eq "$3" <<<"$out" && echo "$out" | head -n 2
}
wait_for 20 "IPv4 time exceeded" ttl_exceeded -4 "$FAR_IP4" "Time to live exceeded"
wait_for 20 "IPv6 time exceeded" ttl_exceeded -6 "$FAR_IP6" "Time exceeded"

# The workers publish their counters periodically: wait for them, with a deadline.
related_passed() { [ "$(metric flowgate_icmp_errors_total 'outcome="related_passed"')" -ge 4 ]; }
wait_for 10 "4 ICMP errors passed as related ($(metric flowgate_icmp_errors_total 'outcome="related_passed"') so far)" related_passed
related="$(metric flowgate_icmp_errors_total 'outcome="related_passed"')"
log "fragments and ICMP errors cross as their flow (related passed: $related, fragments followed: $followed)"
