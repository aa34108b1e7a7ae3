#!/usr/bin/env bash
# TCP tracking under attack through the namespace lab (issue [1/6]), with real programs:
#
#  1. A live TCP session survives spoofed segments from both ends: RSTs spread over the
#     whole sequence space, a RST one byte off the exact sequence number (its peer
#     ignores it), FINs and data with sequence or ACK numbers 2^31 away. The appliance
#     forwards the in-window-but-inexact RST (the endpoint answers with a challenge ACK)
#     and drops the rest; none of them moves the flow: it stays ESTABLISHED in a capture,
#     the session keeps echoing, and a flush still ends it (the client is reset).
#  2. 100 spoofed ACKs of one unknown flow under `reject` draw one RST pair, not 200.
#  3. Under `continue`, a flood of spoofed ACKs from random sources (more flows than the
#     table holds) does not pin the table: the established session keeps echoing and new
#     connections still succeed, during and after the flood; the pickups are evicted.
#
# Run under the lab lock (`flock /tmp/flowgate-lab.lock`); it brings the lab up and down
# itself (twice: the third part runs with a `continue` policy and a small table).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
LAB="$FG_ROOT/scripts/lab.sh"
ECHO="$FG_ROOT/scripts/lab/echo.py"
INJECT="$FG_ROOT/scripts/lab/tcp_inject.py"
GEN="${FLOWGATE_GEN_BIN:-$FG_ROOT/target/release/flowgate-gen}"
W=/tmp/flowgate-lab/tcp-attacks; rm -rf "$W"; mkdir -p "$W"
trap '"$LAB" down >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true' EXIT
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
echoes() { sed -n 's/^ok \([0-9]*\)$/\1/p' "$1" 2>/dev/null || true; }
# progressing FILE: the session's echo count grows within 3 s.
progressing() {
    local a b; a="$(echoes "$1")"
    for _ in $(seq 1 30); do
        sleep 0.1; b="$(echoes "$1")"
        [ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ] && return 0
    done
    return 1
}
wait_session() { # wait_session FILE: up to 5 s for the first echo
    for _ in $(seq 1 50); do [ -n "$(echoes "$1")" ] && return 0; sleep 0.1; done
    fail "session did not start: $(cat "$1" 2>/dev/null)"
}
metrics() { curl -fsS "$FLOWGATE_METRICS"; }
# sum METRIC [LABEL-SUBSTRING]: the sum of a metric's samples
sum() { metrics | awk -v m="$1" -v l="${2:-}" '$1 ~ "^"m"([{]|$)" && index($1, l) { s += $2 } END { printf "%.0f", s }'; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
# wait_metric METRIC LABEL MIN: the workers publish counters every 100 ms
wait_metric() {
    for _ in $(seq 1 50); do [ "$(sum "$1" "$2")" -ge "$3" ] && return 0; sleep 0.1; done
    fail "$1{$2} stayed below $3 (at $(sum "$1" "$2"))"
}

eval "$("$LAB" up)"
export FLOWGATE_API FLOWGATE_CA_FILE FLOWGATE_ACCESS_KEY_ID FLOWGATE_SECRET_ACCESS_KEY FLOWGATE_REGION

log "1. a live session and spoofed RSTs/FINs with wrong sequence numbers"
ip netns exec "$SERVER_NS" python3 "$ECHO" server 7001 7002 >/dev/null 2>&1 &
ip netns exec "$CLIENT_NS" python3 "$ECHO" client "$SERVER_IP4" 7001 --interval 0.05 --status "$W/a" >/dev/null 2>&1 &
CLIENT_A=$!
wait_session "$W/a"
ip netns exec "$CLIENT_NS" python3 "$INJECT" session fg-c-in 7001 --spread 2048 >"$W/from-client.json" \
    || fail "injection from the client side failed"
ip netns exec "$SERVER_NS" python3 "$INJECT" session fg-s-in 7001 --spread 2048 >"$W/from-server.json" \
    || fail "injection from the server side failed"
cat "$W/from-client.json" "$W/from-server.json"
# Every spoofed RST but the inexact ones is out of window; the FINs and data too.
wait_metric flowgate_tcp_invalid_total 'reason="rst_out_of_window"' 4000
wait_metric flowgate_tcp_invalid_total 'reason="rst_in_window_inexact"' 2
wait_metric flowgate_tcp_invalid_total 'reason="seq_out_of_window"' 32
wait_metric flowgate_tcp_invalid_total 'reason="ack_out_of_window"' 16
progressing "$W/a" || fail "the session stopped after the spoofed segments: $(cat "$W/a")"
"$FLOWGATECTL" --json capture --dst "$SERVER_IP4/32" --dport 7001 --proto tcp 2>/dev/null >"$W/cap.json"
states="$(json 'print(" ".join(f["state"] for f in d["flows"]))' <"$W/cap.json")"
[ "$states" = "ESTABLISHED" ] || fail "the session's flow is '$states' after the spoofed segments, expected ESTABLISHED"
log "the session's flow is still ESTABLISHED; a flush must still end it"
"$FLOWGATECTL" --json flush --dst "$SERVER_IP4/32" --dport 7001 --proto tcp 2>/dev/null >"$W/flush.json"
flushed="$(json 'print(len(d["flows"]) if "flows" in d else d.get("matched", d.get("flows_matched", -1)))' <"$W/flush.json" 2>/dev/null || echo '?')"
for _ in $(seq 1 50); do kill -0 "$CLIENT_A" 2>/dev/null || break; sleep 0.1; done
case "$(cat "$W/a")" in *"connection reset"*) ;; *) fail "the flush did not end the session (flushed: $flushed): $(cat "$W/a")" ;; esac
log "session reset by the flush: $(cat "$W/a")"

log "2. 100 spoofed ACKs of one unknown flow under reject: one RST pair"
rsts_before="$(sum flowgate_rsts_sent_total)"
silenced_before="$(sum flowgate_reject_silenced_total)"
ip netns exec "$CLIENT_NS" python3 "$INJECT" flood fg-c-in "$CLIENT_IP4" "$SERVER_IP4" 45678 7002 --count 100 \
    || fail "the spoofed ACKs were not sent"
wait_metric flowgate_reject_silenced_total "" $((silenced_before + 99))
rsts=$(( $(sum flowgate_rsts_sent_total) - rsts_before ))
echo "RSTS-FOR-100-SPOOFED rsts=$rsts silenced=$(( $(sum flowgate_reject_silenced_total) - silenced_before ))"
[ "$rsts" -eq 2 ] || fail "100 spoofed packets of one rejected flow drew $rsts RSTs, expected 2"
"$LAB" down >/dev/null

log "3. a spoofed ACK flood under continue, with a small table"
CONT="$W/config"; mkdir -p "$CONT"
cp -r "$FG_ROOT/configs/." "$CONT/"
sed -i 's/^stream_exception_policy = .*/stream_exception_policy = "continue"/' "$CONT/lab-policy.toml"
sed -i 's/^capacity_per_worker = .*/capacity_per_worker = 4096/' "$CONT/lab.toml"
grep -q '"continue"' "$CONT/lab-policy.toml" || fail "could not switch the policy to continue"
FLOOD_FLOWS=40000
"$GEN" --flows "$FLOOD_FLOWS" --kind established --seed 21 --out "$W/acks.pcap" 2>/dev/null
eval "$(FLOWGATE_LAB_CONFIG="$CONT/lab.toml" "$LAB" up)"
ip netns exec "$SERVER_NS" python3 "$ECHO" server 7001 7002 >/dev/null 2>&1 &
ip netns exec "$CLIENT_NS" python3 "$ECHO" client "$SERVER_IP4" 7001 --interval 0.05 --status "$W/b" >/dev/null 2>&1 &
wait_session "$W/b"
capacity="$(sum flowgate_flow_table_capacity)"
(ip netns exec "$CLIENT_NS" python3 "$FG_ROOT/scripts/lab/replay.py" fg-c-in "$W/acks.pcap" --loops 3 >"$W/flood.out") &
FLOOD=$!
during_new=0; during_fail=0
while kill -0 "$FLOOD" 2>/dev/null; do
    progressing "$W/b" || fail "the established session stalled during the flood: $(cat "$W/b")"
    if ip netns exec "$CLIENT_NS" python3 "$ECHO" probe "$SERVER_IP4" 7002 --timeout 3 >/dev/null; then
        during_new=$((during_new + 1))
    else
        during_fail=$((during_fail + 1))
    fi
done
wait "$FLOOD" || fail "the flood sender failed"
cat "$W/flood.out"
progressing "$W/b" || fail "the established session stopped after the flood: $(cat "$W/b")"
ip netns exec "$CLIENT_NS" python3 "$ECHO" probe "$SERVER_IP4" 7002 --timeout 5 \
    || fail "a new connection after the flood was refused"
created="$(sum flowgate_flows_created_total)"; evicted="$(sum flowgate_flows_evicted_total)"
full="$(sum flowgate_table_full_total)"; active="$(sum flowgate_flows_active)"
echo "ACK-FLOOD offered=$((FLOOD_FLOWS * 3)) capacity=$capacity created=$created evicted=$evicted table_full=$full active=$active new_connections_during=$during_new/$((during_new + during_fail))"
[ "$created" -gt "$capacity" ] || fail "the flood did not overfill the table ($created created, capacity $capacity)"
[ "$evicted" -gt 0 ] || fail "no spoofed pickup was evicted"
[ "$during_fail" -eq 0 ] || fail "$during_fail of $((during_new + during_fail)) new connections failed during the flood"
log "lab TCP attack tests passed"
