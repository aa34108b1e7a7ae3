#!/usr/bin/env python3
"""Generate SigV4 fixtures with botocore's own signer, for mgmt's verifier tests.

Writes mgmt/tests/fixtures/botocore_sigv4.json: requests signed by botocore's SigV4Auth (the
signer inside the AWS CLI and boto3), exactly as they would go on the wire, which
mgmt/tests/sigv4_vectors.rs must all verify.

With --check-suite it also re-signs every vector under
mgmt/tests/fixtures/aws-sig-v4-test-suite/ with botocore and checks the result equals the
vector's .authz, confirming the transcribed AWS vectors.

Usage:
    python3 -m venv /tmp/venv-sigv4 && /tmp/venv-sigv4/bin/pip install botocore
    /tmp/venv-sigv4/bin/python scripts/gen_sigv4_fixtures.py [--check-suite]
"""

import argparse
import datetime
import json
import pathlib
import sys
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "mgmt" / "tests" / "fixtures"
SUITE = FIXTURES / "aws-sig-v4-test-suite"

ACCESS_KEY = "AKIAFLOWGATEEXAMPLE1"
SECRET_KEY = "flowgate/Secret+Key/For/Tests/0123456789ab"
# 2024-03-01T09:30:15Z
SIGNED_AT = datetime.datetime(2024, 3, 1, 9, 30, 15, tzinfo=datetime.timezone.utc)
FIREWALL_ARN = "arn:aws:network-firewall:us-east-1:123456789012:firewall/flowgate"


def sign(method, url, headers, body, region, service, at, params=None, creds=None):
    """Signs with botocore at the fixed instant `at`; returns the AWSRequest."""
    request = AWSRequest(method=method, url=url, data=body, params=params or {})
    for name, value in headers:
        # email.message semantics: assignment appends, so repeated names are kept.
        request.headers[name] = value
    creds = creds or Credentials(ACCESS_KEY, SECRET_KEY)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at.replace(tzinfo=None)):
        botocore.auth.SigV4Auth(creds, service, region).add_auth(request)
    return request


def wire_request(name, method, url, headers, body=b"", region="us-east-1",
                 service="network-firewall", params=None, note=""):
    """One fixture: the request as an HTTP client would send it after botocore signed it."""
    request = sign(method, url, headers, body, region, service, SIGNED_AT, params=params)
    prepared = request.prepare()
    split = urlsplit(prepared.url)
    wire_headers = list(request.headers.items())
    if not any(n.lower() == "host" for n, _ in wire_headers):
        # The HTTP client adds Host from the URL, exactly as botocore assumed when signing.
        wire_headers.insert(0, ("Host", botocore.auth._host_from_url(prepared.url)))
    return {
        "name": name,
        "note": note,
        "method": method,
        "path": split.path or "/",
        "query": split.query,
        "headers": [[n, v] for n, v in wire_headers],
        "body": body.decode("utf-8"),
        "region": region,
        "service": service,
    }


def generate():
    target = "NetworkFirewall_20201112."
    json_headers = lambda action: [
        ("X-Amz-Target", target + action),
        ("Content-Type", "application/x-amz-json-1.0"),
        ("User-Agent", "aws-cli/2.15.0 Python/3.11 botocore/2.0"),
    ]
    flush = json.dumps({
        "FirewallArn": FIREWALL_ARN,
        "MinimumFlowAgeInSeconds": 300,
        "FlowFilters": [{
            "SourceAddress": {"AddressDefinition": "10.0.1.0/24"},
            "DestinationAddress": {"AddressDefinition": "10.0.2.0/24"},
            "DestinationPort": "80",
            "Protocols": ["TCP"],
        }],
    }).encode()
    cases = [
        wire_request("start-flow-flush", "POST", "http://127.0.0.1:8080/",
                     json_headers("StartFlowFlush"), flush,
                     note="AWS JSON 1.0 call as the AWS CLI makes it"),
        wire_request("describe-flow-operation", "POST", "http://localhost:8443/",
                     json_headers("DescribeFlowOperation"),
                     json.dumps({"FirewallArn": FIREWALL_ARN,
                                 "FlowOperationId": "4a1e0f52-9d9b-4f0e-b2a3-51e6c1c0a9f7"}).encode()),
        wire_request("list-flow-operations-eu", "POST", "http://[::1]:9000/",
                     json_headers("ListFlowOperations"),
                     json.dumps({"FirewallArn": FIREWALL_ARN, "MaxResults": 10}).encode(),
                     region="eu-west-1", note="other region, IPv6 host with port"),
        wire_request("native-get-query", "GET", "http://127.0.0.1:8080/v1/operations",
                     [("Accept", "application/json")], b"", service="flowgate",
                     params=[("state", "COMPLETED"), ("limit", "10"), ("note", "a b/c"),
                             ("Zeta", "1"), ("alpha", "é")],
                     note="query string needing encoding and sorting (uppercase before lowercase)"),
        wire_request("odd-header-spacing", "POST", "http://127.0.0.1:8080/v1/policy/reload",
                     [("X-Custom-Spaces", "  a   b    c  "), ("X-Repeated", "one"),
                      ("X-Repeated", "two  three"), ("Content-Type", "application/json")],
                     b"{}", service="flowgate",
                     note="values trimmed and inner runs of spaces collapsed; repeated header joined"),
        wire_request("encoded-path", "GET", "http://127.0.0.1:8080/v1/operations/op%20id/results/./x/..",
                     [], b"", service="flowgate",
                     note="percent-encoded and dot segments: double-encoded and normalised"),
        wire_request("content-sha256-header", "POST", "http://127.0.0.1:8080/",
                     json_headers("ListFlowOperationResults") + [
                         ("X-Amz-Content-SHA256",
                          __import__("hashlib").sha256(b'{"MaxResults": 5}').hexdigest())],
                     b'{"MaxResults": 5}', note="explicit x-amz-content-sha256, signed"),
        wire_request("utf8-body", "POST", "http://127.0.0.1:8080/v1/capture",
                     [("Content-Type", "application/json; charset=utf-8")],
                     json.dumps({"label": "naïve – ✓"}, ensure_ascii=False).encode(),
                     service="flowgate"),
    ]
    out = {
        "generator": f"botocore {botocore.__version__} SigV4Auth (scripts/gen_sigv4_fixtures.py)",
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "signed_at_unix": int(SIGNED_AT.timestamp()),
        "requests": cases,
    }
    path = FIXTURES / "botocore_sigv4.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} requests to {path.relative_to(ROOT)}")


def parse_suite_req(text):
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    headers = []
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers.append((name, value.strip()))
    return method, target, headers, body.encode()


def check_suite():
    at = datetime.datetime(2015, 8, 30, 12, 36, 0, tzinfo=datetime.timezone.utc)
    failures = 0
    reqs = sorted(SUITE.rglob("*.req"))
    for req_file in reqs:
        method, target, headers, body = parse_suite_req(req_file.read_text(encoding="utf-8"))
        path, _, query = target.partition("?")
        creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        token = [v for n, v in headers if n.lower() == "x-amz-security-token"]
        if token:
            creds = Credentials(creds.access_key, creds.secret_key, token[0])
        request = sign(method, "https://example.amazonaws.com" + path, headers, body,
                       "us-east-1", "service", at,
                       params=parse_qsl(query, keep_blank_values=True) if query else None,
                       creds=creds)
        expected = req_file.with_suffix(".authz").read_text(encoding="utf-8")
        got = request.headers["Authorization"]
        status = "ok" if got == expected else "MISMATCH"
        failures += got != expected
        print(f"{status:8} {req_file.parent.relative_to(SUITE)}")
        if got != expected:
            print(f"   expected {expected}\n   botocore {got}")
    print(f"{len(reqs) - failures}/{len(reqs)} suite vectors confirmed by botocore")
    return failures == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-suite", action="store_true",
                        help="also confirm the AWS test-suite fixtures with botocore")
    args = parser.parse_args()
    generate()
    if args.check_suite and not check_suite():
        sys.exit(1)


if __name__ == "__main__":
    main()
