#!/usr/bin/env python3
"""Regenerates mgmt/aws-model/network-firewall.json: the part of botocore's network-firewall
service model that Flowgate serves (the operations below and every shape they reach), with
documentation stripped. The management API validates requests against it (members,
required, lengths, ranges, patterns, enums) so its answers match the service's model.

Usage: .venv/bin/python scripts/aws-model.py   (botocore from the test venv)
"""
import gzip, json, os, sys

import botocore

OPERATIONS = [
    "StartFlowCapture", "StartFlowFlush", "DescribeFlowOperation", "ListFlowOperations",
    "ListFlowOperationResults",
    "DescribeFirewall", "ListFirewalls", "DescribeFirewallMetadata",
    "DescribeFirewallPolicy", "UpdateFirewallPolicy", "ListFirewallPolicies", "CreateFirewallPolicy",
    "CreateRuleGroup", "DescribeRuleGroup", "DescribeRuleGroupMetadata", "UpdateRuleGroup",
    "DeleteRuleGroup", "ListRuleGroups",
    "DescribeLoggingConfiguration", "UpdateLoggingConfiguration",
    "TagResource", "UntagResource", "ListTagsForResource", "AssociateFirewallPolicy",
]

root = os.path.join(os.path.dirname(botocore.__file__), "data", "network-firewall")
version = sorted(os.listdir(root))[-1]
path = os.path.join(root, version, "service-2.json")
model = json.load(gzip.open(path + ".gz") if os.path.exists(path + ".gz") else open(path))
shapes = model["shapes"]
keep = {}

def reach(name):
    if name in keep:
        return
    s = {k: v for k, v in shapes[name].items() if k != "documentation"}
    keep[name] = s
    if s["type"] == "structure":
        s["members"] = {m: {k: v for k, v in d.items() if k != "documentation"} for m, d in s["members"].items()}
        for d in s["members"].values():
            reach(d["shape"])
    elif s["type"] == "list":
        reach(s["member"]["shape"])
    elif s["type"] == "map":
        reach(s["key"]["shape"]); reach(s["value"]["shape"])

ops = {}
for o in OPERATIONS:
    op = model["operations"][o]
    ops[o] = {"input": op["input"]["shape"], "output": op["output"]["shape"],
              "errors": [e["shape"] for e in op.get("errors", [])]}
    reach(op["input"]["shape"]); reach(op["output"]["shape"])
    for e in op.get("errors", []):
        reach(e["shape"])

out = {"source": f"botocore {botocore.__version__} network-firewall {version}",
       "operations": ops, "shapes": dict(sorted(keep.items()))}
dest = os.path.join(os.path.dirname(__file__), "..", "mgmt", "aws-model", "network-firewall.json")
with open(dest + ".tmp", "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
os.replace(dest + ".tmp", dest)
print(f"{dest}: {len(ops)} operations, {len(keep)} shapes")
