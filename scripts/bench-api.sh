#!/usr/bin/env bash
# Management API throughput: one SigV4-signed AWS JSON 1.0 `ListFlowOperations`, replayed by
# `wrk` over N keep-alive connections against a flowgate with null ports (one worker).
# The signature stays valid for the run (SigV4 allows 5 minutes of clock skew).
#
# usage: scripts/bench-api.sh [--clients N] [--secs S] [--plain]
#   --clients  keep-alive connections (60)
#   --secs     measuring window (10)
#   --plain    plain HTTP on loopback (`plain_http = true`) instead of HTTPS
# Environment: FLOWGATE_BIN (else builds). Prints `RESULT api_rps=… clients=… scheme=…`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

CLIENTS=60
SECS=10
SCHEME=https
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS="$2"; shift ;;
        --secs) SECS="$2"; shift ;;
        --plain) SCHEME=http ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[ "$(id -u)" -eq 0 ] || die "scripts/bench-api.sh needs root (DPDK EAL)"
ensure_packages wrk curl python3
[ -n "${FLOWGATE_BIN:-}" ] || build_release
# flowgate runs from the work directory: a relative path must not change meaning there.
FLOWGATE_BIN=$(realpath "$FLOWGATE_BIN")

WORK="$(mktemp -d /tmp/fg-bench-api.XXXXXX)"
PREFIX="fgb-api-$$"
FG_PID=""
cleanup() {
    [ -z "$FG_PID" ] || { kill "$FG_PID" 2>/dev/null || true; wait "$FG_PID" 2>/dev/null || true; }
    rm -rf "/var/run/dpdk/$PREFIX" "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API="127.0.0.1:$(free_port)"
METRICS="127.0.0.1:$(free_port)"
KEY=AKIAFLOWGATEBENCH001
SECRET=flowgate-bench-secret-key
ARN=arn:aws:network-firewall:us-east-1:000000000000:firewall/flowgate-bench
PLAIN=false; [ "$SCHEME" = http ] && PLAIN=true
printf '[stateless]\ndefault_action = "forward_to_sfe"\n[stateful]\nrule_order = "default_action_order"\n' >"$WORK/policy.toml"
cat >"$WORK/flowgate.toml" <<TOML
[appliance]
firewall_name = "flowgate-bench"
firewall_arn = "$ARN"
zone = "bench-zone"
state_dir = "state"
[eal]
args = ["--no-huge", "-m", "256", "--no-shconf", "--no-pci", "--no-telemetry", "--log-level=error",
        "--lcores=0@0,1@1", "--file-prefix=$PREFIX", "--vdev=net_null0", "--vdev=net_null1"]
mbufs = 4095
[[port_pair]]
a = "net_null0"
b = "net_null1"
[workers]
lcores = [1]
[flow_table]
capacity_per_worker = 4096
[policy]
file = "policy.toml"
[mgmt]
listen = "$API"
metrics_listen = "$METRICS"
auth = "sigv4"
region = "us-east-1"
plain_http = $PLAIN
[[mgmt.keys]]
access_key_id = "$KEY"
secret_access_key = "$SECRET"
[logging]
flow_log = "off"
alert_log = "off"
audit_log = "audit.log"
TOML
(cd "$WORK" && exec "$FLOWGATE_BIN" --config flowgate.toml) >"$WORK/flowgate.log" 2>&1 &
FG_PID=$!
for _ in $(seq 1 150); do
    curl -sf "http://$METRICS/readyz" >/dev/null 2>&1 && break
    kill -0 "$FG_PID" 2>/dev/null || die "flowgate exited: $(tail -5 "$WORK/flowgate.log")"
    sleep 0.2
done

# A wrk script replaying one signed request (SigV4 by hand: HMAC-SHA256 chain, python3 stdlib).
python3 - "$API" "$KEY" "$SECRET" "$ARN" >"$WORK/signed.lua" <<'PY'
import datetime, hashlib, hmac, sys
host, key, secret, arn = sys.argv[1:]
body = '{"FirewallArn":"%s"}' % arn
now = datetime.datetime.now(datetime.timezone.utc)
amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
target = "NetworkFirewall_20201112.ListFlowOperations"
headers = {"content-type": "application/x-amz-json-1.0", "host": host, "x-amz-date": amz, "x-amz-target": target}
signed = ";".join(sorted(headers))
canonical = "\n".join(["POST", "/", ""] + ["%s:%s" % (k, headers[k]) for k in sorted(headers)]
                      + ["", signed, hashlib.sha256(body.encode()).hexdigest()])
scope = "%s/us-east-1/network-firewall/aws4_request" % day
to_sign = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canonical.encode()).hexdigest()])
k = ("AWS4" + secret).encode()
for part in (day, "us-east-1", "network-firewall", "aws4_request"):
    k = hmac.new(k, part.encode(), hashlib.sha256).digest()
sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (key, scope, signed, sig)
print('wrk.method = "POST"')
print("wrk.body = %r" % body)
# wrk adds its own `Host` unless the script sets exactly that name: a lowercase `host` here
# would send two Host headers, and the signature covers one.
for name, value in headers.items():
    print('wrk.headers["%s"] = "%s"' % ("Host" if name == "host" else name, value))
print('done = function(summary, latency, requests)')
print('  io.write(string.format("non2xx=%d errors=%d\\n", summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))')
print('end')
PY

log "wrk: $CLIENTS keep-alive connections, ${SECS}s, $SCHEME"
out=$(wrk -t2 -c"$CLIENTS" -d"${SECS}s" -s "$WORK/signed.lua" "$SCHEME://$API/")
echo "$out"
grep -q "non2xx=0 " <<<"$out" || die "some requests were not answered 200"
rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
echo "RESULT api_rps=$rps clients=$CLIENTS scheme=$SCHEME"
