// The stock AWS SDK for JavaScript v3 over Smithy RPC v2 CBOR against Flowgate's resource
// actions (firewall, policy, rule groups, tags). Prints one JSON object for
// tests/aws_resources_e2e.rs to check; asserts nothing itself.
//
//   node resources_cbor.mjs ENDPOINT FIREWALL_ARN KEY_ID SECRET REGION POLICY_ARN CA_FILE
// The API is HTTPS; CA_FILE is the appliance's CA certificate the SDK is told to trust.
import {
  NetworkFirewallClient,
  DescribeFirewallCommand,
  DescribeFirewallPolicyCommand,
  UpdateFirewallPolicyCommand,
  ListRuleGroupsCommand,
  DescribeRuleGroupCommand,
  ListTagsForResourceCommand,
} from "@aws-sdk/client-network-firewall";
import { SmithyRpcV2CborProtocol } from "@smithy/core/cbor";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { readFileSync } from "node:fs";
import { Agent } from "node:https";

const [endpoint, firewallArn, keyId, secret, region, policyArn, caFile] = process.argv.slice(2);
const nf = new NetworkFirewallClient({
  endpoint,
  requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: readFileSync(caFile) }) }),
  region,
  credentials: { accessKeyId: keyId, secretAccessKey: secret },
  protocol: SmithyRpcV2CborProtocol,
  protocolSettings: { defaultNamespace: "com.amazonaws.networkfirewall" },
  maxAttempts: 1,
});
const protocols = new Set();
nf.middlewareStack.add(
  (next) => async (args) => {
    const r = await next(args);
    protocols.add(r.response.headers["smithy-protocol"]);
    return r;
  },
  { step: "finalizeRequest", name: "flowgateWireProbe", priority: "low" },
);

async function errorCode(f) {
  try {
    await f();
    return "no error";
  } catch (e) {
    return e.name !== "Error" ? e.name : String(e.__type ?? e.message);
  }
}

const out = {};
const fw = await nf.send(new DescribeFirewallCommand({ FirewallArn: firewallArn }));
out.firewall_policy_arn = fw.Firewall.FirewallPolicyArn;
const d = await nf.send(new DescribeFirewallPolicyCommand({ FirewallPolicyArn: policyArn }));
out.sep_before = d.FirewallPolicy.StatefulEngineOptions.StreamExceptionPolicy;
out.last_modified_is_date = d.FirewallPolicyResponse.LastModifiedTime instanceof Date;
const policy = d.FirewallPolicy;
policy.StatefulEngineOptions.StreamExceptionPolicy = "REJECT";
await nf.send(new UpdateFirewallPolicyCommand({ FirewallPolicyArn: policyArn, UpdateToken: d.UpdateToken, FirewallPolicy: policy }));
out.stale = await errorCode(() =>
  nf.send(new UpdateFirewallPolicyCommand({ FirewallPolicyArn: policyArn, UpdateToken: d.UpdateToken, FirewallPolicy: policy })),
);
const after = await nf.send(new DescribeFirewallPolicyCommand({ FirewallPolicyArn: policyArn }));
out.sep_after = after.FirewallPolicy.StatefulEngineOptions.StreamExceptionPolicy;
const groups = await nf.send(new ListRuleGroupsCommand({}));
out.rule_groups = groups.RuleGroups.map((g) => g.Name).sort();
const web = await nf.send(new DescribeRuleGroupCommand({ RuleGroupName: "WebTrafficRules", Type: "STATEFUL" }));
out.web_rules = web.RuleGroup.RulesSource.StatefulRules.length;
out.tags = (await nf.send(new ListTagsForResourceCommand({ ResourceArn: firewallArn }))).Tags;
out.missing = await errorCode(() => nf.send(new DescribeRuleGroupCommand({ RuleGroupName: "Nope", Type: "STATEFUL" })));
out.wire = { protocol: [...protocols] };
console.log(JSON.stringify(out));
