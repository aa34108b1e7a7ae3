#!/usr/bin/env python3
"""What flowgate-fleet adds to a flow capture: the same capture (start, poll
DescribeFlowOperation every 2 ms until settled, read every results page) timed with boto3
directly against zone a's appliance and through the fleet, alternating, N rounds each.
Prints the median and p90 of both in ms and the median difference.

Run inside the fleet lab (its environment gives both endpoints and their keys):
  eval "$(scripts/lab.sh fleet up)"
  .venv/bin/python scripts/bench/fleet_overhead.py [ROUNDS]
  scripts/lab.sh fleet down
"""
import os
import statistics
import sys
import time

import boto3
import botocore.config

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
env = os.environ
arn, zone = env["FIREWALL_ARN"], env["ZONE_A"]
cfg = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})


def client(endpoint, key, secret, verify):
    return boto3.client(
        "network-firewall",
        endpoint_url=endpoint,
        region_name=env.get("FLOWGATE_REGION", "us-east-1"),
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        verify=verify,
        config=cfg,
    )


direct = client(
    env["ZONE_A_APPLIANCE_API"],
    env["ZONE_A_ACCESS_KEY_ID"],
    env["ZONE_A_SECRET_ACCESS_KEY"],
    env.get("ZONE_A_CA_FILE") or True,
)
fleet = client(
    env["FLOWGATE_FLEET_API"],
    env["FLOWGATE_ACCESS_KEY_ID"],
    env["FLOWGATE_SECRET_ACCESS_KEY"],
    env["FLOWGATE_CA_FILE"],
)
FILTERS = [{"SourceAddress": {"AddressDefinition": "198.18.0.0/15"}}]


def capture(nf):
    scope = {"FirewallArn": arn, "AvailabilityZone": zone}
    t0 = time.perf_counter()
    op = nf.start_flow_capture(FlowFilters=FILTERS, **scope)["FlowOperationId"]
    while nf.describe_flow_operation(FlowOperationId=op, **scope)["FlowOperationStatus"] == "IN_PROGRESS":
        time.sleep(0.002)
    flows = 0
    for page in nf.get_paginator("list_flow_operation_results").paginate(FlowOperationId=op, **scope):
        flows += len(page["Flows"])
    return (time.perf_counter() - t0) * 1000.0, flows


# Warm both connections (TLS handshakes, botocore loaders) before measuring.
capture(direct)
capture(fleet)
times = {"direct": [], "fleet": []}
for _ in range(rounds):
    for name, nf in (("direct", direct), ("fleet", fleet)):
        ms, flows = capture(nf)
        times[name].append(ms)


def p90(xs):
    return sorted(xs)[int(len(xs) * 0.9) - 1]


for name, xs in times.items():
    print(f"{name:6s} capture: median {statistics.median(xs):7.2f} ms  p90 {p90(xs):7.2f} ms  ({len(xs)} runs, {flows} flows)")
print(f"fleet overhead: {statistics.median(times['fleet']) - statistics.median(times['direct']):.2f} ms per capture (median difference)")
