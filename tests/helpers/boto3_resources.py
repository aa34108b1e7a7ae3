#!/usr/bin/env python3
"""boto3 (AWS JSON 1.0) against Flowgate's resource actions, for tests/aws_resources_e2e.rs.
Credentials and region from the environment; the appliance's CA certificate from
FLOWGATE_CA_FILE (the API is HTTPS). Prints one JSON object; asserts nothing.

  boto3_resources.py ENDPOINT FIREWALL_ARN POLICY_ARN
"""
import json
import os
import sys

import boto3
import botocore.config
from botocore.exceptions import ClientError

endpoint, firewall_arn, policy_arn = sys.argv[1:4]
nf = boto3.client(
    "network-firewall",
    endpoint_url=endpoint,
    config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    verify=os.environ["FLOWGATE_CA_FILE"],
)


def code(f):
    try:
        f()
        return "no error"
    except ClientError as e:
        return e.response["Error"]["Code"]


out = {}
fw = nf.describe_firewall(FirewallArn=firewall_arn)
out["firewall_policy_arn"] = fw["Firewall"]["FirewallPolicyArn"]
out["sync"] = fw["FirewallStatus"]["ConfigurationSyncStateSummary"]
d = nf.describe_firewall_policy(FirewallPolicyArn=policy_arn)
policy = d["FirewallPolicy"]
out["policy_sep"] = policy["StatefulEngineOptions"]["StreamExceptionPolicy"]
out["last_modified_type"] = type(d["FirewallPolicyResponse"]["LastModifiedTime"]).__name__
groups = []
for page in nf.get_paginator("list_rule_groups").paginate(Type="STATEFUL", PaginationConfig={"PageSize": 1}):
    groups += [g["Name"] for g in page["RuleGroups"]]
out["rule_groups"] = sorted(groups)
policy["StatefulEngineOptions"]["StreamExceptionPolicy"] = "CONTINUE"
u = nf.update_firewall_policy(FirewallPolicyArn=policy_arn, UpdateToken=d["UpdateToken"], FirewallPolicy=policy)
out["stale"] = code(lambda: nf.update_firewall_policy(
    FirewallPolicyArn=policy_arn, UpdateToken=d["UpdateToken"], FirewallPolicy=policy))
out["updated_sep"] = nf.describe_firewall_policy(FirewallPolicyArn=policy_arn)["FirewallPolicy"][
    "StatefulEngineOptions"]["StreamExceptionPolicy"]
out["new_token_differs"] = u["UpdateToken"] != d["UpdateToken"]
out["rule_group_meta"] = nf.describe_rule_group_metadata(RuleGroupName="WebTrafficRules", Type="STATEFUL")[
    "StatefulRuleOptions"]
print(json.dumps(out))
