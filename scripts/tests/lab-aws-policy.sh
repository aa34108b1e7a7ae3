#!/usr/bin/env bash
# Namespace test of the AWS resource model (issue [3/6]) with the stock AWS CLI:
#  - seed 004's WebTrafficRules and AppTrafficRules (addresses mapped to the lab) are created
#    with create-rule-group, a firewall policy referencing them with aws:drop_strict is created
#    and associated: real traffic obeys it (allowed ports connect, the others time out);
#  - update-firewall-policy with a stale token is refused (InvalidTokenException);
#  - update-firewall-policy switches StreamExceptionPolicy DROP -> REJECT; describe-firewall
#    reports the new token IN_SYNC; a flushed session then sees a reset at once;
#  - a domain-list rule group is refused naming RulesSourceList.
# Brings the lab up (policy.source = "api", a fresh state directory) and down itself; run
# under `flock /tmp/flowgate-lab.lock`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
LAB="$FG_ROOT/scripts/lab.sh"
W=/tmp/flowgate-lab/aws-policy-test; rm -rf "$W"; mkdir -p "$W/config"
trap 'FLOWGATE_LAB_CONFIG="$W/config/lab.toml" "$LAB" down >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true' EXIT
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

# The lab's config, with the API owning the policy and a state directory of its own.
cp -r "$FG_ROOT/configs/." "$W/config/"
sed -i -e 's|^file = "lab-policy.toml"|file = "lab-policy.toml"\nsource = "api"|' \
       -e "s|^state_dir = .*|state_dir = \"$W/state\"|" "$W/config/lab.toml"
grep -q '^source = "api"' "$W/config/lab.toml" || fail "config not rewritten"
export FLOWGATE_LAB_CONFIG="$W/config/lab.toml"
eval "$("$LAB" up)"
ECHO="$FG_ROOT/scripts/lab/echo.py"
VENV="${FLOWGATE_TEST_VENV:-$FG_ROOT/.venv}"
[ -x "$VENV/bin/aws" ] || fail "no AWS CLI at $VENV/bin/aws (scripts/test.sh installs it)"
export AWS_ACCESS_KEY_ID="$FLOWGATE_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$FLOWGATE_SECRET_ACCESS_KEY" \
       AWS_DEFAULT_REGION="$FLOWGATE_REGION" AWS_PAGER="" AWS_MAX_ATTEMPTS=1
nf() { "$VENV/bin/aws" network-firewall --endpoint-url "$FLOWGATE_API" --ca-bundle "$FLOWGATE_CA_FILE" --output json "$@"; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

# The app tier lives on the server too (the web tier is 198.18.0.0/25, the app tier .128/25).
APP_IP4=198.18.0.130
ip -n "$SERVER_NS" addr add "$APP_IP4/24" dev fg-s-in
ip netns exec "$SERVER_NS" python3 "$ECHO" server 80 443 8022 8080 8081 >/dev/null 2>&1 &
sleep 0.3

log "create seed 004's rule groups and policy with the AWS CLI"
H="$FG_ROOT/tests/helpers/aws"
WEB_ARN="$(nf create-rule-group --rule-group-name WebTrafficRules --type STATEFUL --capacity 100 \
    --rule-group "file://$H/web-traffic-rules.json" --tags Key=Name,Value=Web-Traffic-Rules | jq_ 'd["RuleGroupResponse"]["RuleGroupArn"]')"
APP_ARN="$(nf create-rule-group --rule-group-name AppTrafficRules --type STATEFUL --capacity 100 \
    --rule-group "file://$H/app-traffic-rules.json" | jq_ 'd["RuleGroupResponse"]["RuleGroupArn"]')"
sed -e "s|@WEB@|$WEB_ARN|" -e "s|@APP@|$APP_ARN|" -e "s|@SEP@|DROP|" "$H/main-firewall-policy.json" >"$W/policy.json"
POLICY_ARN="$(nf create-firewall-policy --firewall-policy-name MainFirewallPolicy \
    --firewall-policy "file://$W/policy.json" | jq_ 'd["FirewallPolicyResponse"]["FirewallPolicyArn"]')"
FW_TOKEN="$(nf describe-firewall --firewall-arn "$FIREWALL_ARN" | jq_ 'd["UpdateToken"]')"
nf associate-firewall-policy --firewall-arn "$FIREWALL_ARN" --firewall-policy-arn "$POLICY_ARN" \
    --update-token "$FW_TOKEN" >/dev/null

log "the lab's traffic obeys the policy"
probe() { ip netns exec "$CLIENT_NS" python3 "$ECHO" probe "$1" "$2" --timeout "${3:-3}"; }
for target in "$SERVER_IP4 443" "$SERVER_IP4 80" "$APP_IP4 8080"; do
    # shellcheck disable=SC2086
    probe $target || fail "allowed connection to $target refused"
done
for target in "$SERVER_IP4 8022" "$APP_IP4 8081"; do
    # shellcheck disable=SC2086
    if probe $target 2; then fail "connection to $target allowed by a policy that drops it"; fi
done

log "describe-firewall / describe-firewall-policy"
nf describe-firewall --firewall-name flowgate-lab >"$W/fw.json"
[ "$(jq_ 'd["Firewall"]["FirewallPolicyArn"]' <"$W/fw.json")" = "$POLICY_ARN" ] || fail "firewall not associated: $(cat "$W/fw.json")"
[ "$(jq_ 'd["FirewallStatus"]["ConfigurationSyncStateSummary"]' <"$W/fw.json")" = IN_SYNC ] || fail "not IN_SYNC: $(cat "$W/fw.json")"
nf describe-firewall-policy --firewall-policy-arn "$POLICY_ARN" >"$W/pol.json"
OLD_TOKEN="$(jq_ 'd["UpdateToken"]' <"$W/pol.json")"
[ "$(jq_ 'd["FirewallPolicy"]["StatefulDefaultActions"]' <"$W/pol.json")" = "['aws:drop_strict']" ] || fail "policy shape: $(cat "$W/pol.json")"

log "a long-lived session to the web tier"
ip netns exec "$CLIENT_NS" python3 "$ECHO" client "$SERVER_IP4" 80 --status "$W/session" >/dev/null 2>&1 &
for _ in $(seq 1 50); do grep -q '^ok' "$W/session" 2>/dev/null && break; sleep 0.1; done
grep -q '^ok' "$W/session" || fail "session did not start"

log "update-firewall-policy: StreamExceptionPolicy DROP -> REJECT"
sed -e "s|@WEB@|$WEB_ARN|" -e "s|@APP@|$APP_ARN|" -e "s|@SEP@|REJECT|" "$H/main-firewall-policy.json" >"$W/policy-reject.json"
NEW_TOKEN="$(nf update-firewall-policy --firewall-policy-arn "$POLICY_ARN" --update-token "$OLD_TOKEN" \
    --firewall-policy "file://$W/policy-reject.json" | jq_ 'd["UpdateToken"]')"
[ "$NEW_TOKEN" != "$OLD_TOKEN" ] || fail "update token did not change"
set +e
out="$(nf update-firewall-policy --firewall-policy-arn "$POLICY_ARN" --update-token "$OLD_TOKEN" \
    --firewall-policy "file://$W/policy.json" 2>&1)"; rc=$?
set -e
[ "$rc" -ne 0 ] && grep -q InvalidTokenException <<<"$out" || fail "stale token accepted: $out"
nf describe-firewall --firewall-arn "$FIREWALL_ARN" >"$W/fw2.json"
python3 - "$W/fw2.json" "$NEW_TOKEN" <<'PY' || fail "describe-firewall does not show the new policy version IN_SYNC: $(cat "$W/fw2.json")"
import json, sys
d = json.load(open(sys.argv[1]))
cfg = d["FirewallStatus"]["SyncStates"]["lab-zone-a"]["Config"]["MainFirewallPolicy"]
assert cfg == {"SyncStatus": "IN_SYNC", "UpdateToken": sys.argv[2]}, cfg
assert d["FirewallStatus"]["ConfigurationSyncStateSummary"] == "IN_SYNC"
PY
[ "$(nf describe-firewall-policy --firewall-policy-name MainFirewallPolicy | jq_ 'd["FirewallPolicy"]["StatefulEngineOptions"]["StreamExceptionPolicy"]')" = REJECT ] \
    || fail "describe-firewall-policy does not show REJECT"
grep -q '^ok' "$W/session" || fail "the established session broke across the policy swap: $(cat "$W/session")"

log "flush the session: under REJECT the client is reset at once"
OP="$(nf start-flow-flush --firewall-arn "$FIREWALL_ARN" \
    --flow-filters "[{\"DestinationAddress\":{\"AddressDefinition\":\"$SERVER_IP4/32\"},\"DestinationPort\":\"80\",\"Protocols\":[\"6\"]}]" \
    | jq_ 'd["FlowOperationId"]')"
for _ in $(seq 1 100); do
    st="$(nf describe-flow-operation --firewall-arn "$FIREWALL_ARN" --flow-operation-id "$OP" | jq_ 'd["FlowOperationStatus"]')"
    [ "$st" != IN_PROGRESS ] && break; sleep 0.1
done
[ "$st" = COMPLETED ] || fail "flush ended $st"
for _ in $(seq 1 50); do grep -q reset "$W/session" && break; sleep 0.1; done
grep -q "connection reset" "$W/session" || fail "flushed session not reset: $(cat "$W/session")"

log "a domain-list rule group is refused by name"
set +e
out="$(nf create-rule-group --rule-group-name Domains --type STATEFUL --capacity 10 \
    --rule-group '{"RulesSource":{"RulesSourceList":{"Targets":[".example.com"],"TargetTypes":["TLS_SNI"],"GeneratedRulesType":"DENYLIST"}}}' 2>&1)"; rc=$?
set -e
[ "$rc" -ne 0 ] && grep -q InvalidRequestException <<<"$out" && grep -q RulesSourceList <<<"$out" || fail "domain list not refused by name: $out"
log "AWS policy namespace test passed"
