# Shared by the console's end-to-end scripts (scripts/tests/console-e2e.sh against one
# appliance, scripts/tests/fleet-console-e2e.sh against flowgate-fleet): Chromium trusting
# the lab's CA, long-lived TCP sessions through the lab, and the node story run. Source it
# after lib/common.sh; the caller's cleanup kills "${PIDS[@]}".

# Debian's Chromium (never a browser download); the console and playwright-core from npm;
# certutil (libnss3-tools) to make Chromium trust the lab's CA.
console_e2e_prepare() {
    ensure_packages chromium libnss3-tools
    "$FG_ROOT/scripts/build-console.sh" --no-test
    [ -f "$FG_ROOT/console/node_modules/playwright-core/package.json" ] || die "playwright-core is not installed in console/"
}

# chromium_trusting HOME_DIR CA_FILE: the console is served over HTTPS with a certificate
# the lab generated; Chromium verifies it against that CA, put in an NSS database of a HOME
# of its own (Chromium on Linux reads $HOME/.pki/nssdb), never with certificate errors ignored.
chromium_trusting() {
    mkdir -p "$1/.pki/nssdb"
    certutil -N -d "sql:$1/.pki/nssdb" --empty-password
    certutil -A -d "sql:$1/.pki/nssdb" -n flowgate-lab-ca -t "C,," -i "$2"
}

ECHO="$FG_ROOT/scripts/lab/echo.py"
echoes() { sed -n 's/^ok \([0-9]*\)$/\1/p' "$1" 2>/dev/null || true; }

# echo_session CLIENT_NS SERVER_NS SERVER_IP PORT STATUS: a long-lived TCP session from
# CLIENT_NS to SERVER_IP:PORT (an echo every 0.2 s, progress in STATUS); returns once it has
# echoed three times (its processes are added to PIDS).
echo_session() {
    local client_ns=$1 server_ns=$2 server_ip=$3 port=$4 status=$5 n
    ip netns exec "$server_ns" python3 "$ECHO" server "$port" >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 50); do ip netns exec "$server_ns" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break; sleep 0.1; done
    ip netns exec "$client_ns" python3 "$ECHO" client "$server_ip" "$port" --interval 0.2 --status "$status" >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do n="$(echoes "$status")"; [ -n "$n" ] && [ "$n" -ge 3 ] && break; sleep 0.1; done
    n="$(echoes "$status")"
    [ -n "$n" ] && [ "$n" -ge 3 ] || die "the long-lived session in $client_ns did not start: $(cat "$status" 2>/dev/null)"
    log "long-lived session $client_ns -> $server_ip:$port running ($n echoes)"
}
