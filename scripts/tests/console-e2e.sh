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

# Debian's Chromium (never a browser download); the console and playwright-core from npm;
# certutil (libnss3-tools) to make Chromium trust the appliance's CA.
ensure_packages chromium libnss3-tools
"$FG_ROOT/scripts/build-console.sh" --no-test
[ -f "$FG_ROOT/console/node_modules/playwright-core/package.json" ] || die "playwright-core is not installed in console/"

W=/tmp/flowgate-lab/console-e2e
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    "$LAB" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
eval "$("$LAB" up)"
rm -rf "$W" && mkdir -p "$W"
# The console is served over HTTPS with the certificate the appliance generated: Chromium
# verifies it against that CA, put in an NSS database of a HOME of its own (Chromium on
# Linux reads $HOME/.pki/nssdb), never with certificate errors ignored.
NSS_HOME="$W/chromium-home"
mkdir -p "$NSS_HOME/.pki/nssdb"
certutil -N -d "sql:$NSS_HOME/.pki/nssdb" --empty-password
certutil -A -d "sql:$NSS_HOME/.pki/nssdb" -n flowgate-lab-ca -t "C,," -i "$FLOWGATE_CA_FILE"
ECHO="$FG_ROOT/scripts/lab/echo.py"
echoes() { sed -n 's/^ok \([0-9]*\)$/\1/p' "$1" 2>/dev/null || true; }

ip netns exec "$SERVER_NS" python3 "$ECHO" server 7001 >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do ip netns exec "$SERVER_NS" bash -c 'exec 3<>/dev/tcp/127.0.0.1/7001' 2>/dev/null && break; sleep 0.1; done
ip netns exec "$CLIENT_NS" python3 "$ECHO" client "$SERVER_IP4" 7001 --interval 0.2 --status "$W/client" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do n="$(echoes "$W/client")"; [ -n "$n" ] && [ "$n" -ge 3 ] && break; sleep 0.1; done
n="$(echoes "$W/client")"
[ -n "$n" ] && [ "$n" -ge 3 ] || die "the long-lived session did not start: $(cat "$W/client" 2>/dev/null)"
log "long-lived session $CLIENT_IP4 -> $SERVER_IP4:7001 running ($n echoes)"

SHOTS="$FG_ROOT/target/console-screenshots"
rm -rf "$SHOTS"
CONSOLE_URL="$FLOWGATE_API/console/" ACCESS_KEY_ID="$FLOWGATE_ACCESS_KEY_ID" SECRET_ACCESS_KEY="$FLOWGATE_SECRET_ACCESS_KEY" \
CHROMIUM_HOME="$NSS_HOME" CLIENT_IP="$CLIENT_IP4" SERVER_IP="$SERVER_IP4" SESSION_PORT=7001 CLIENT_STATUS="$W/client" SCREENSHOT_DIR="$SHOTS" \
    node "$FG_ROOT/console/e2e/console-e2e.mjs"
log "console e2e passed; screenshots in $SHOTS"
