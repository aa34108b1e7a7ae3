#!/usr/bin/env python3
"""Runs one flow operation over the native API and times it: POST
/v1/operations/{capture|flush} matching every flow (or the flows from SRC_CIDR), then polls GET /v1/operations/{id}
every 2 ms until it is no longer IN_PROGRESS. Prints
`<seconds> <tx_packets before> <tx_packets after> <flows_matched> <status>`, the tx
counters read from /metrics just before the call and just after completion.

usage: op.py HOST:PORT capture|flush [SRC_CIDR]
"""
import http.client
import json
import sys
import time

api, kind = sys.argv[1], sys.argv[2]
host, port = api.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=30)


def call(method, path, body=None):
    headers = {"content-type": "application/json"} if body else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        sys.exit(f"{method} {path}: HTTP {r.status}: {data[:300]!r}")
    return data


def tx_packets():
    total = 0.0
    for line in call("GET", "/metrics").decode().splitlines():
        if line.startswith("flowgate_tx_packets_total"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


if len(sys.argv) > 3:
    filters = {"filters": [{"src": sys.argv[3]}]}
else:
    filters = {"filters": [{"src": "0.0.0.0/0"}, {"src": "::/0"}]}
tx0 = tx_packets()
t0 = time.monotonic()
op = json.loads(call("POST", f"/v1/operations/{kind}", json.dumps(filters)))
while op["status"] == "IN_PROGRESS":
    time.sleep(0.002)
    op = json.loads(call("GET", f"/v1/operations/{op['id']}"))
t1 = time.monotonic()
tx1 = tx_packets()
print(f"{t1 - t0:.3f} {tx0} {tx1} {op.get('flows_matched', 0)} {op['status']}")
