#!/usr/bin/env python3
"""A stand-in for one zone's appliance in tests/fleet_policy.rs: the firewall policy actions
of the AWS API (DescribeFirewall, DescribeFirewallPolicy, UpdateFirewallPolicy with DryRun and
UpdateToken) over HTTPS on loopback (the test certificate), state kept in a JSON file (written atomically) so a
restarted stub keeps its policy like a restarted appliance. It counts the updates it applied,
so the test can prove a dry run changed nothing. It checks no signature (the fleet's SigV4
signing is covered by tests/fleet_e2e.rs against real appliances).

  policy_zone_stub.py PORT STATE_FILE ZONE FIREWALL_ARN CERT_FILE KEY_FILE
"""
import json
import os
import sys
import uuid
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, STATE, ZONE, FIREWALL_ARN = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
CERT_FILE, KEY_FILE = sys.argv[5], sys.argv[6]
POLICY_ARN = FIREWALL_ARN.replace(":firewall/", ":firewall-policy/") + "-policy"
POLICY_NAME = POLICY_ARN.rsplit("/", 1)[1]
ACTIONS = {"aws:pass", "aws:drop", "aws:forward_to_sfe"}


def load():
    try:
        with open(STATE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {
            "token": str(uuid.uuid4()),
            "updates": 0,
            "policy": {
                "StatelessDefaultActions": ["aws:forward_to_sfe"],
                "StatelessFragmentDefaultActions": ["aws:forward_to_sfe"],
            },
        }


def save(state):
    tmp = "%s.%s.tmp" % (STATE, uuid.uuid4())
    with open(tmp, "w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, STATE)


state = load()
save(state)


def policy_response():
    return {
        "FirewallPolicyName": POLICY_NAME,
        "FirewallPolicyArn": POLICY_ARN,
        "FirewallPolicyId": "00000000-0000-4000-8000-000000000001",
    }


def error(kind, message, status=400):
    return status, {"__type": kind, "message": message}


def handle(action, body):
    if action == "DescribeFirewall":
        return 200, {
            "UpdateToken": state["token"],
            "Firewall": {
                "FirewallName": FIREWALL_ARN.rsplit("/", 1)[1],
                "FirewallArn": FIREWALL_ARN,
                "FirewallPolicyArn": POLICY_ARN,
                "VpcId": "vpc-stub",
                "SubnetMappings": [{"SubnetId": "subnet-" + ZONE}],
                "FirewallId": "00000000-0000-4000-8000-000000000002",
            },
            "FirewallStatus": {
                "Status": "READY",
                "ConfigurationSyncStateSummary": "IN_SYNC",
                "SyncStates": {ZONE: {"Config": {POLICY_ARN: {"SyncStatus": "IN_SYNC", "UpdateToken": state["token"]}}}},
            },
        }
    if action == "DescribeFirewallPolicy":
        if body.get("FirewallPolicyName", POLICY_NAME) != POLICY_NAME and body.get("FirewallPolicyArn") != POLICY_ARN:
            return error("ResourceNotFoundException", "no such firewall policy")
        return 200, {
            "UpdateToken": state["token"],
            "FirewallPolicyResponse": policy_response(),
            "FirewallPolicy": state["policy"],
        }
    if action == "UpdateFirewallPolicy":
        if body.get("UpdateToken") != state["token"]:
            return error("InvalidTokenException", "UpdateToken is stale")
        policy = body.get("FirewallPolicy")
        if not isinstance(policy, dict):
            return error("InvalidRequestException", "FirewallPolicy: missing required parameter")
        for member in ("StatelessDefaultActions", "StatelessFragmentDefaultActions"):
            for a in policy.get(member, []):
                if a not in ACTIONS:
                    return error("InvalidRequestException", "%s: '%s' is not a valid action" % (member, a))
        if body.get("DryRun"):
            return 200, {"UpdateToken": state["token"], "FirewallPolicyResponse": policy_response()}
        state["policy"] = policy
        state["token"] = str(uuid.uuid4())
        state["updates"] += 1
        save(state)
        return 200, {"UpdateToken": state["token"], "FirewallPolicyResponse": policy_response()}
    return error("UnknownOperationException", "unknown operation '%s'" % action)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, obj, ctype="application/x-amz-json-1.0"):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, {"ok": True}, "application/json")
        else:
            self.reply(404, {"error": "NotFound"}, "application/json")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        target = self.headers.get("X-Amz-Target", "")
        action = target.split(".", 1)[1] if "." in target else target
        status, obj = handle(action, body)
        self.reply(status, obj)


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
# HTTPS like a real appliance: the fleet verifies the zone's certificate (ca_file).
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(CERT_FILE, KEY_FILE)
server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()
