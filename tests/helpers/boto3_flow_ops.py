#!/usr/bin/env python3
"""boto3/botocore client for the Flowgate AWS-API integration tests (tests/aws_cli_e2e.rs).

Credentials and region come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION); the appliance's CA certificate from FLOWGATE_CA_FILE (the API is HTTPS). Every subcommand prints one JSON object on stdout for the Rust test to
assert on; this script asserts nothing itself, so a failure is always reported by the test.

  boto3_flow_ops.py scenario ENDPOINT FIREWALL_ARN ZONE ZONE_ID
      drives all five actions with boto3 (waiting, paginators, error codes and messages)
  boto3_flow_ops.py raw ENDPOINT TARGET BODY
      sends one SigV4-signed AWS JSON 1.0 request with a literal body (or `@size:N` for
      N bytes of JSON padding) and reports the HTTP status and parsed body
"""
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.session
from botocore.exceptions import ClientError


CA_FILE = os.environ["FLOWGATE_CA_FILE"]


def client(endpoint, validate=True):
    cfg = botocore.config.Config(
        retries={"max_attempts": 1, "mode": "standard"},
        parameter_validation=validate,
    )
    return boto3.client("network-firewall", endpoint_url=endpoint, config=cfg, verify=CA_FILE)


def error_code(call):
    """Runs `call`; returns the AWS error code it raised, or None if it succeeded."""
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def error_message(call):
    """Runs `call`; returns the modelled `Message` member botocore parsed from the error
    body (None if it succeeded or the body had no `Message`)."""
    try:
        call()
    except ClientError as e:
        return e.response.get("Message")
    return None


def wait_settled(nf, arn, op_id, timeout=60):
    deadline = time.time() + timeout
    while True:
        d = nf.describe_flow_operation(FirewallArn=arn, FlowOperationId=op_id)
        if d["FlowOperationStatus"] != "IN_PROGRESS" or time.time() > deadline:
            return d
        time.sleep(0.1)


def flow_key(f):
    return [
        f["SourceAddress"]["AddressDefinition"],
        f["DestinationAddress"]["AddressDefinition"],
        f["SourcePort"],
        f["DestinationPort"],
        f["Protocol"],
        f["PacketCount"],
        f["ByteCount"],
    ]


def scenario(endpoint, arn, zone, zone_id):
    nf = client(endpoint)
    out = {}
    filters = [{"SourceAddress": {"AddressDefinition": "198.18.0.0/24"}}]
    started = nf.start_flow_capture(
        FirewallArn=arn, AvailabilityZone=zone, FlowFilters=filters
    )
    op_id = started["FlowOperationId"]
    out["capture_id"] = op_id
    out["start_status"] = started["FlowOperationStatus"]
    d = wait_settled(nf, arn, op_id)
    out["describe"] = {
        "type": d["FlowOperationType"],
        "status": d["FlowOperationStatus"],
        "zone": d.get("AvailabilityZone"),
        "zone_id": d.get("AvailabilityZoneId"),
        "filters": d["FlowOperation"]["FlowFilters"],
        # botocore parses epoch seconds into a datetime: proof the wire type is right
        "timestamp_epoch": d["FlowRequestTimestamp"].timestamp(),
    }
    pages = nf.get_paginator("list_flow_operation_results").paginate(
        FirewallArn=arn, FlowOperationId=op_id, PaginationConfig={"PageSize": 4}
    )
    page_sizes, flows, zone_ids = [], [], set()
    for p in pages:
        page_sizes.append(len(p["Flows"]))
        zone_ids.add(p.get("AvailabilityZoneId"))
        flows.extend(flow_key(f) for f in p["Flows"])
    out["result_page_sizes"] = page_sizes
    out["results_zone_ids"] = sorted(z or "" for z in zone_ids)
    out["flows"] = flows
    flush = nf.start_flow_flush(
        FirewallArn=arn,
        FlowFilters=[
            {
                "SourceAddress": {"AddressDefinition": "198.18.0.0/24"},
                "Protocols": ["17"],
            }
        ],
    )
    out["flush_id"] = flush["FlowOperationId"]
    out["flush_status"] = wait_settled(nf, arn, flush["FlowOperationId"])[
        "FlowOperationStatus"
    ]
    flushed = nf.list_flow_operation_results(
        FirewallArn=arn, FlowOperationId=flush["FlowOperationId"]
    )["Flows"]
    out["flushed"] = [flow_key(f) for f in flushed]
    listed = nf.get_paginator("list_flow_operations").paginate(
        FirewallArn=arn, PaginationConfig={"PageSize": 1}
    )
    out["operations"] = [
        [o["FlowOperationId"], o["FlowOperationType"]]
        for p in listed
        for o in p["FlowOperations"]
    ]
    unknown = "00000000-0000-4000-8000-000000000000"
    out["errors"] = {
        "bad_cidr": error_code(
            lambda: nf.start_flow_capture(
                FirewallArn=arn,
                FlowFilters=[{"SourceAddress": {"AddressDefinition": "198.18.0.1/33"}}],
            )
        ),
        "unknown_id": error_code(
            lambda: nf.describe_flow_operation(FirewallArn=arn, FlowOperationId=unknown)
        ),
        "wrong_arn": error_code(
            lambda: nf.list_flow_operations(FirewallArn=arn + "-other")
        ),
    }
    out["errors"]["both_zones"] = error_code(
        lambda: nf.describe_flow_operation(
            FirewallArn=arn,
            AvailabilityZone=zone,
            AvailabilityZoneId=zone_id,
            FlowOperationId=op_id,
        )
    )
    out["errors"]["other_zone_id"] = error_code(
        lambda: nf.describe_flow_operation(
            FirewallArn=arn, AvailabilityZoneId="use1-az99", FlowOperationId=op_id
        )
    )
    out["errors"]["bad_vpce"] = error_code(
        lambda: nf.describe_flow_operation(
            FirewallArn=arn, VpcEndpointId="endpoint-1", FlowOperationId=op_id
        )
    )
    out["by_zone_id"] = nf.describe_flow_operation(
        FirewallArn=arn,
        AvailabilityZoneId=zone_id,
        VpcEndpointId="vpce-0a1b2c3d",
        FlowOperationId=op_id,
    ).get("VpcEndpointId")
    out["bad_cidr_message"] = error_message(
        lambda: nf.start_flow_capture(
            FirewallArn=arn,
            FlowFilters=[{"SourceAddress": {"AddressDefinition": "198.18.0.1/33"}}],
        )
    )
    # Missing required members reach the server only without client-side validation.
    raw = client(endpoint, validate=False)
    out["errors"]["missing_filters"] = error_code(
        lambda: raw.start_flow_capture(FirewallArn=arn)
    )
    out["errors"]["missing_arn"] = error_code(
        lambda: raw.start_flow_flush(
            FlowFilters=[{"SourceAddress": {"AddressDefinition": "198.18.0.0/24"}}]
        )
    )
    out["errors"]["string_age"] = error_code(
        lambda: raw.start_flow_capture(
            FirewallArn=arn, FlowFilters=filters, MinimumFlowAgeInSeconds="old"
        )
    )
    print(json.dumps(out))


def raw(endpoint, target, body):
    if body.startswith("@size:"):
        n = int(body[len("@size:"):])
        body = '{"Pad":"' + "x" * n + '"}'
    session = botocore.session.get_session()
    creds = session.get_credentials()
    region = session.get_config_variable("region")
    headers = {"Content-Type": "application/x-amz-json-1.0"}
    if target:
        headers["X-Amz-Target"] = target
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=endpoint + "/", data=body.encode(), headers=headers
    )
    botocore.auth.SigV4Auth(creds, "network-firewall", region).add_auth(req)
    prepared = req.prepare()
    http_req = urllib.request.Request(
        prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST"
    )
    try:
        tls = ssl.create_default_context(cafile=CA_FILE)
        with urllib.request.urlopen(http_req, timeout=30, context=tls) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    print(json.dumps({"status": status, "body": parsed}))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "scenario" and len(sys.argv) == 6:
        scenario(*sys.argv[2:])
    elif cmd == "raw" and len(sys.argv) == 5:
        raw(*sys.argv[2:])
    else:
        sys.exit(__doc__)
