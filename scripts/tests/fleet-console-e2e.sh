#!/usr/bin/env bash
# The web console served by flowgate-fleet, in Chromium against the fleet lab (issue [6/6]:
# the console gets a zone selector when served by the fleet): a long-lived TCP session in
# each zone (fg-a-client -> fg-a-server:7001, fg-b-client -> fg-b-server:7001), one capture
# started in zone a through the fleet with the stock AWS CLI, then
# console/e2e/fleet-console-e2e.mjs picks zone b first, captures every lab address there
# and sees only zone b's session, lists zone b's or every zone's operations and follows zone
# a's. Screenshots: target/console-screenshots-fleet/. Brings the fleet lab up and down
# itself; run under `flock /tmp/flowgate-lab.lock` (tests/lab_e2e.rs does).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
. "$FG_ROOT/scripts/lib/console-e2e.sh"
LAB="$FG_ROOT/scripts/lab.sh"
AWS="${FLOWGATE_TEST_VENV:-$FG_ROOT/.venv}/bin/aws"
[ -x "$AWS" ] || die "no AWS CLI at $AWS (scripts/test.sh installs it)"
console_e2e_prepare

W=/tmp/flowgate-fleet-console-e2e
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    "$LAB" fleet down >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT
eval "$("$LAB" fleet up)"
rm -rf "$W" && mkdir -p "$W"
NSS_HOME="$W/chromium-home"
chromium_trusting "$NSS_HOME" "$FLOWGATE_CA_FILE"
echo_session "$ZONE_A_CLIENT_NS" "$ZONE_A_SERVER_NS" "$ZONE_A_SERVER_IP4" 7001 "$W/client-a"
echo_session "$ZONE_B_CLIENT_NS" "$ZONE_B_SERVER_NS" "$ZONE_B_SERVER_IP4" 7001 "$W/client-b"

# Zone a's operation, for the history of every zone.
A_OP="$(AWS_ACCESS_KEY_ID="$FLOWGATE_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$FLOWGATE_SECRET_ACCESS_KEY" \
    AWS_DEFAULT_REGION="$FLOWGATE_REGION" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER="" \
    "$AWS" network-firewall start-flow-capture --endpoint-url "$FLOWGATE_FLEET_API" --ca-bundle "$FLOWGATE_CA_FILE" \
    --firewall-arn "$FIREWALL_ARN" --availability-zone "$ZONE_A" \
    --flow-filters '[{"SourceAddress":{"AddressDefinition":"198.18.0.0/15"}}]' \
    --query FlowOperationId --output text)" || die "start-flow-capture in $ZONE_A through the fleet failed"
log "capture $A_OP started in $ZONE_A through the fleet"

SHOTS="$FG_ROOT/target/console-screenshots-fleet"
rm -rf "$SHOTS"
CONSOLE_URL="$FLOWGATE_FLEET_API/console/" ACCESS_KEY_ID="$FLOWGATE_ACCESS_KEY_ID" SECRET_ACCESS_KEY="$FLOWGATE_SECRET_ACCESS_KEY" \
CHROMIUM_HOME="$NSS_HOME" ZONE_A="$ZONE_A" ZONE_B="$ZONE_B" ZONE_A_CLIENT_IP="$ZONE_A_CLIENT_IP4" \
ZONE_B_CLIENT_IP="$ZONE_B_CLIENT_IP4" ZONE_B_SERVER_IP="$ZONE_B_SERVER_IP4" SESSION_PORT=7001 \
ZONE_A_OPERATION="$A_OP" SCREENSHOT_DIR="$SHOTS" \
    node "$FG_ROOT/console/e2e/fleet-console-e2e.mjs"
log "fleet console e2e passed; screenshots in $SHOTS"
