#!/usr/bin/env bash
# The flow-operations story, asserted step by step, in a running lab (scripts/lab.sh up):
#  1. two long-lived TCP sessions (ports 7001, 7002) through the appliance;
#  2. a capture finds them;
#  3. a policy reload denies 7001: the open session keeps working (stateful verdicts stick),
#     a new connection to 7001 is refused;
#  4. capture --verdict-changed lists exactly the 7001 session;
#  5. flush --verdict-changed resets exactly it (the client sees "connection reset by peer"),
#     the 7002 session keeps working, a reconnect to 7001 is refused by the new policy;
#  6. the flow log holds the flushed record with last_state;
#  7. the stock AWS CLI runs one capture and one flush against the appliance.
# The policy is restored at the end. Exits non-zero on the first failed expectation.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
eval "$("$FG_ROOT/scripts/lab.sh" env)"
CTL="$FLOWGATECTL"
ECHO="$FG_ROOT/scripts/lab/echo.py"
POLICY_DIR="$(dirname "$FLOWGATE_CONFIG")"
WORK=/tmp/flowgate-lab/story
rm -rf "$WORK" && mkdir -p "$WORK"
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    cp "$FG_ROOT/configs/lab.rules" "$POLICY_DIR/lab.rules" 2>/dev/null || true
    "$CTL" policy reload >/dev/null 2>&1 || true
}
trap cleanup EXIT

step() { log "story: $*"; }
fail() { printf '\033[31mFAILED: %s\033[0m\n' "$*" >&2; exit 1; }
echoes() { sed -n 's/^ok \([0-9]*\)$/\1/p' "$1" 2>/dev/null || true; }
wait_echoes() { # wait_echoes STATUSFILE MIN (within 30 s: python start-up is slow on a loaded machine)
    for _ in $(seq 1 300); do
        local n; n="$(echoes "$1")"
        [ -n "$n" ] && [ "$n" -ge "$2" ] && return 0
        sleep 0.1
    done
    fail "$1: session did not reach $2 echoes ($(cat "$1" 2>/dev/null))"
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

step "long-lived sessions: echo server on 7001 and 7002 in $SERVER_NS, one client each in $CLIENT_NS"
ip netns exec "$SERVER_NS" python3 "$ECHO" server 7001 7002 >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5
ip netns exec "$CLIENT_NS" python3 "$ECHO" client "$SERVER_IP4" 7001 --status "$WORK/a" >/dev/null 2>&1 &
PIDS+=($!); CLIENT_A=$!
ip netns exec "$CLIENT_NS" python3 "$ECHO" client "$SERVER_IP4" 7002 --status "$WORK/b" >/dev/null 2>&1 &
PIDS+=($!); CLIENT_B=$!
wait_echoes "$WORK/a" 3
wait_echoes "$WORK/b" 3

step "capture: which sessions into $SERVER_IP4:7000-7999 are alive?"
"$CTL" capture --dst "$SERVER_IP4/32" --dport 7000:7999 --proto tcp 2>/dev/null
"$CTL" --json capture --dst "$SERVER_IP4/32" --dport 7000:7999 --proto tcp 2>/dev/null >"$WORK/cap1.json"
ports="$(json 'print(" ".join(sorted(str(f["dst_port"]) for f in d["flows"])))' <"$WORK/cap1.json")"
[ "$ports" = "7001 7002" ] || fail "capture found ports '$ports', expected '7001 7002'"

step "policy change: deny port 7001 (reload without restart)"
cp "$POLICY_DIR/policies/lab-deny-7001.rules" "$POLICY_DIR/lab.rules.tmp" && mv -f "$POLICY_DIR/lab.rules.tmp" "$POLICY_DIR/lab.rules"
"$CTL" policy reload
a_before="$(echoes "$WORK/a")"
sleep 1
a_after="$(echoes "$WORK/a")"
[ "$a_after" -gt "$a_before" ] || fail "the open 7001 session stopped after the reload (it must keep its verdict)"
echo "open 7001 session still working after the reload ($a_before -> $a_after echoes)"
if ip netns exec "$CLIENT_NS" python3 "$ECHO" probe "$SERVER_IP4" 7001 --timeout 2; then
    fail "a new connection to 7001 was allowed by the new policy"
fi
ip netns exec "$CLIENT_NS" python3 "$ECHO" probe "$SERVER_IP4" 7002 --timeout 3 || fail "new 7002 connection refused"

step "capture --verdict-changed: the live connections the new policy would refuse"
"$CTL" --json capture --verdict-changed 2>/dev/null >"$WORK/cap2.json"
ports="$(json 'print(" ".join(sorted(str(f["dst_port"]) for f in d["flows"])))' <"$WORK/cap2.json")"
[ "$ports" = "7001" ] || fail "verdict-changed capture found '$ports', expected '7001'"
echo "verdict-changed capture: exactly the 7001 session"

step "flush --verdict-changed: remove exactly those; the client must see its connection reset"
"$CTL" flush --verdict-changed 2>/dev/null
for _ in $(seq 1 300); do kill -0 "$CLIENT_A" 2>/dev/null || break; sleep 0.1; done
status_a="$(cat "$WORK/a")"
echo "7001 client: $status_a"
case "$status_a" in *"connection reset"*) ;; *) fail "7001 client was not reset: $status_a" ;; esac
b_before="$(echoes "$WORK/b")"
sleep 1
b_after="$(echoes "$WORK/b")"
[ "$b_after" -gt "$b_before" ] || fail "the 7002 session stopped: the flush touched it"
echo "7002 session untouched ($b_before -> $b_after echoes)"
if ip netns exec "$CLIENT_NS" python3 "$ECHO" probe "$SERVER_IP4" 7001 --timeout 2; then
    fail "a reconnect to 7001 was allowed"
fi
echo "reconnect to 7001 refused by the current policy"

step "flow log: the flushed record with last_state"
sleep 0.5
flushed_7001="$(grep '"reason":"flushed"' "$FLOWGATE_LOG_DIR/flow.log" | grep '"dest_port":7001' || true)"
grep -q '"last_state":"ESTABLISHED"' <<<"$flushed_7001" \
    || fail "no flushed flow-log record with last_state ESTABLISHED for port 7001"
grep '"reason":"flushed"' "$FLOWGATE_LOG_DIR/flow.log" | grep '"dest_port":7001' | tail -n 1
rejected="$(curl -fsS "$FLOWGATE_METRICS" | awk '/^flowgate_midstream_packets_total.*rejected/ {s+=$2} END {print s+0}')"
[ "$rejected" -ge 1 ] || fail "midstream rejected counter did not move"
echo "midstream packets rejected: $rejected"

step "the stock AWS CLI: one capture and one flush"
VENV="${FLOWGATE_TEST_VENV:-$FG_ROOT/.venv}"
if [ ! -x "$VENV/bin/aws" ]; then
    log "installing the AWS CLI (PyPI) into $VENV"
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check awscli boto3 || fail "pip install awscli"
fi
aws_nf() {
    AWS_ACCESS_KEY_ID="$FLOWGATE_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$FLOWGATE_SECRET_ACCESS_KEY" \
    AWS_DEFAULT_REGION="$FLOWGATE_REGION" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true "$VENV/bin/aws" network-firewall --endpoint-url "$FLOWGATE_API" --ca-bundle "$FLOWGATE_CA_FILE" "$@"
}
wait_op() {
    for _ in $(seq 1 50); do
        st="$(aws_nf describe-flow-operation --firewall-arn "$FIREWALL_ARN" --flow-operation-id "$1" --query FlowOperationStatus --output text)"
        [ "$st" != "IN_PROGRESS" ] && { echo "$st"; return 0; }
        sleep 0.2
    done
    echo "IN_PROGRESS"
}
op="$(aws_nf start-flow-capture --firewall-arn "$FIREWALL_ARN" \
    --flow-filters "[{\"DestinationAddress\":{\"AddressDefinition\":\"$SERVER_IP4/32\"},\"DestinationPort\":\"7002\",\"Protocols\":[\"6\"]}]" \
    --query FlowOperationId --output text)"
[ "$(wait_op "$op")" = "COMPLETED" ] || fail "AWS CLI capture $op did not complete"
aws_nf list-flow-operation-results --firewall-arn "$FIREWALL_ARN" --flow-operation-id "$op" \
    --query 'Flows[].[SourceAddress.AddressDefinition,SourcePort,DestinationAddress.AddressDefinition,DestinationPort,Protocol,Age,PacketCount,ByteCount]' --output table
n="$(aws_nf list-flow-operation-results --firewall-arn "$FIREWALL_ARN" --flow-operation-id "$op" --query 'length(Flows)' --output text)"
# The live session, plus the 7002 probe connection if it is still in TIME_WAIT (active until CLOSED).
[ "$n" -ge 1 ] || fail "AWS CLI capture returned $n flows, expected the live 7002 session"
op="$(aws_nf start-flow-flush --firewall-arn "$FIREWALL_ARN" \
    --flow-filters "[{\"DestinationAddress\":{\"AddressDefinition\":\"$SERVER_IP4/32\"},\"DestinationPort\":\"7002\"}]" \
    --query FlowOperationId --output text)"
[ "$(wait_op "$op")" = "COMPLETED" ] || fail "AWS CLI flush $op did not complete"
for _ in $(seq 1 300); do kill -0 "$CLIENT_B" 2>/dev/null || break; sleep 0.1; done
status_b="$(cat "$WORK/b")"
echo "7002 client after the AWS CLI flush: $status_b"
case "$status_b" in *"connection reset"*) ;; *) fail "7002 client was not reset by the AWS CLI flush: $status_b" ;; esac
aws_nf list-flow-operations --firewall-arn "$FIREWALL_ARN" --max-items 4 \
    --query 'FlowOperations[].[FlowOperationId,FlowOperationType,FlowOperationStatus]' --output table

log "story passed"
