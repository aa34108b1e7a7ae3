#!/usr/bin/env bash
# The web console's story in Chromium against the real appliance in the namespace lab
# (issue [4/6]): a long-lived TCP session from fg-client to fg-server:7001, then
# console/e2e/console-e2e.mjs signs in (and is refused with a wrong secret), captures the
# session by addresses and port, flushes it from the results, sees the client reset,
# checks the history, the 20-filter limit and the API's CIDR message, with axe-core checks.
# Screenshots: target/console-screenshots/. Brings the lab up and down itself; run under
# `flock /tmp/flowgate-lab.lock` (tests/lab_e2e.rs does).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
LAB="$FG_ROOT/scripts/lab.sh"

. "$FG_ROOT/scripts/lib/console-e2e.sh"
console_e2e_prepare

W=/tmp/flowgate-lab/console-e2e
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    "$LAB" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
eval "$("$LAB" up)"
rm -rf "$W" && mkdir -p "$W"
NSS_HOME="$W/chromium-home"
chromium_trusting "$NSS_HOME" "$FLOWGATE_CA_FILE"
echo_session "$CLIENT_NS" "$SERVER_NS" "$SERVER_IP4" 7001 "$W/client"

SHOTS="$FG_ROOT/target/console-screenshots"
rm -rf "$SHOTS"
CONSOLE_URL="$FLOWGATE_API/console/" ACCESS_KEY_ID="$FLOWGATE_ACCESS_KEY_ID" SECRET_ACCESS_KEY="$FLOWGATE_SECRET_ACCESS_KEY" \
CHROMIUM_HOME="$NSS_HOME" CLIENT_IP="$CLIENT_IP4" SERVER_IP="$SERVER_IP4" SESSION_PORT=7001 CLIENT_STATUS="$W/client" SCREENSHOT_DIR="$SHOTS" \
    node "$FG_ROOT/console/e2e/console-e2e.mjs"
log "console e2e passed; screenshots in $SHOTS"
