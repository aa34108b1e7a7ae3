#!/usr/bin/env bash
# Flow-table exhaustion through the namespace lab (issue [6/6]): a flood of new flows from
# random sources (flowgate-gen: 2/3 TCP SYNs, 1/3 UDP) is replayed into fg-client's veth
# while a long-lived TCP session crosses the appliance. Checks: the session keeps
# echoing during and after the flood; the table never exceeds its capacity; emergency mode
# is entered; flood flows are evicted; every packet is forwarded or dropped with a reason
# (rx + RSTs = tx + drops); a new connection after the flood works; RSS stays flat.
# Prints one `FLOOD-LAB key=value …` line with the figures.
#
#   FG_LAB_FLOOD_FLOWS=N (default 300000) flows offered; run under the lab lock
#   (`flock /tmp/flowgate-lab.lock`), it brings the lab up and down itself.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
LAB="$FG_ROOT/scripts/lab.sh"
FLOWS="${FG_LAB_FLOOD_FLOWS:-300000}"
trap '"$LAB" down >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true' EXIT
eval "$("$LAB" up)"
GEN="${FLOWGATE_GEN_BIN:-$FG_ROOT/target/release/flowgate-gen}"
ECHO="$FG_ROOT/scripts/lab/echo.py"
W=/tmp/flowgate-lab/flood-test; rm -rf "$W"; mkdir -p "$W"
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
echoes() { sed -n 's/^ok \([0-9]*\)$/\1/p' "$1" 2>/dev/null || true; }
progressing() { local a b; a="$(echoes "$1")"; sleep 1; b="$(echoes "$1")"; [ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ]; }
metrics() { curl -fsS "$FLOWGATE_METRICS"; }
# sum METRIC [LABEL-SUBSTRING]: the sum of a metric's samples
sum() { metrics | awk -v m="$1" -v l="${2:-}" '$1 ~ "^"m"([{]|$)" && index($1, l) { s += $2 } END { printf "%.0f", s }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$FLOWGATE_PID/status"; }

log "generating the flood: $FLOWS new flows"
syn=$((FLOWS * 2 / 3)); udp=$((FLOWS - syn))
"$GEN" --flows "$syn" --kind syn --seed 11 --out "$W/syn.pcap" 2>/dev/null
"$GEN" --flows "$udp" --kind udp --seed 12 --out "$W/udp.pcap" 2>/dev/null

ip netns exec "$SERVER_NS" python3 "$ECHO" server 7001 7002 >/dev/null 2>&1 &
sleep 0.5
ip netns exec "$CLIENT_NS" python3 "$ECHO" client "$SERVER_IP4" 7001 --interval 0.05 --status "$W/a" >/dev/null 2>&1 &
for _ in $(seq 1 300); do [ -n "$(echoes "$W/a")" ] && break; sleep 0.1; done
progressing "$W/a" || fail "long-lived session did not start"
capacity="$(sum flowgate_flow_table_capacity)"
rss_before="$(rss_kib)"

log "flooding fg-c-in while the session runs"
(ip netns exec "$CLIENT_NS" python3 "$FG_ROOT/scripts/lab/replay.py" fg-c-in "$W/syn.pcap" >"$W/syn.out"
 ip netns exec "$CLIENT_NS" python3 "$FG_ROOT/scripts/lab/replay.py" fg-c-in "$W/udp.pcap" >"$W/udp.out") &
FLOOD=$!
rss_max="$rss_before"; emergency=0; active_max=0; during_ok=0; samples=0
while kill -0 "$FLOOD" 2>/dev/null; do
    a="$(echoes "$W/a")"
    sleep 0.5
    b="$(echoes "$W/a")"
    samples=$((samples + 1))
    [ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ] && during_ok=$((during_ok + 1))
    r="$(rss_kib)"; [ "$r" -gt "$rss_max" ] && rss_max="$r"
    [ "$(sum flowgate_flow_table_emergency)" -ge 1 ] && emergency=1
    act="$(sum flowgate_flows_active)"; [ "$act" -gt "$active_max" ] && active_max="$act"
done
wait "$FLOOD" || fail "the flood sender failed"
cat "$W/syn.out" "$W/udp.out"
sleep 1
progressing "$W/a" || fail "the long-lived session stopped after the flood: $(cat "$W/a")"
# A flow evicted by the flood would stop the session for good (its next segments are midstream
# and the lab's stream exception policy resets them), so survival is proven by the session
# progressing after the flood; during it, a loaded machine may starve the echo client for a
# sample or two, so only a session that stalled for most of the flood fails here.
[ $((during_ok * 2)) -ge "$samples" ] || fail "the session stalled during the flood ($during_ok of $samples half-second samples progressed)"
ip netns exec "$CLIENT_NS" python3 "$ECHO" probe "$SERVER_IP4" 7002 --timeout 5 \
    || fail "a new connection after the flood was refused"

m="$(metrics)"
msum() { echo "$m" | awk -v m="$1" -v l="${2:-}" '$1 ~ "^"m"([{]|$)" && index($1, l) { s += $2 } END { printf "%.0f", s }'; }
rx="$(msum flowgate_rx_packets_total)"; tx="$(msum flowgate_tx_packets_total)"
dropped="$(msum flowgate_dropped_packets_total)"; rsts="$(msum flowgate_rsts_sent_total)"
created="$(msum flowgate_flows_created_total)"; evicted="$(msum flowgate_flows_evicted_total)"
full="$(msum flowgate_table_full_total)"; active="$(msum flowgate_flows_active)"
# Frames the kernel dropped before the appliance read them (af_packet ring full): the
# Python sender and the appliance share 2 CPUs here.
missed="$(msum flowgate_port_rx_missed_total)"
# Flow-end records of evicted flood flows the log writer could not keep up with (bounded
# queue: memory stays flat; counted, never blocking).
log_dropped="$(( $(msum flowgate_log_queue_dropped_total) + $(msum flowgate_events_dropped_total) ))"
reasons="$(echo "$m" | sed -n 's/^flowgate_dropped_packets_total{.*reason="\([a-z_]*\)".*} \([0-9]*\)$/\1=\2/p' | awk -F= '{ s[$1] += $2 } END { for (r in s) if (s[r] > 0) printf "%s:%d,", r, s[r] }')"
rss_after="$(rss_kib)"
echo "FLOOD-LAB offered=$FLOWS capacity=$capacity created=$created held_max=$active_max held_after=$active evicted=$evicted table_full=$full emergency_seen=$emergency rx=$rx rx_missed=$missed tx=$tx dropped=$dropped rsts=$rsts drops_by_reason=${reasons%,} log_records_dropped=$log_dropped session_samples_ok=$during_ok/$samples rss_kib_before=$rss_before rss_kib_max=$rss_max rss_kib_after=$rss_after"

[ "$active_max" -le "$capacity" ] || fail "table over capacity: $active_max > $capacity"
[ "$emergency" -eq 1 ] || fail "emergency mode never entered"
[ "$evicted" -gt 0 ] || fail "no flood flow was evicted"
[ "$created" -gt "$capacity" ] || fail "the flood did not overfill the table ($created flows created, capacity $capacity)"
[ $((rx + rsts)) -eq $((tx + dropped)) ] || fail "unaccounted packets: rx $rx + rsts $rsts != tx $tx + dropped $dropped"
[ $((rss_max - rss_before)) -lt 16384 ] || fail "RSS grew by $((rss_max - rss_before)) KiB during the flood"
log "lab flood test passed"
