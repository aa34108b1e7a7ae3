// The stock AWS SDK for JavaScript v3 (@aws-sdk/client-network-firewall) driving the
// appliance over the Smithy RPC v2 CBOR protocol (the first protocol of the service
// model, which newer SDKs prefer): all five flow actions, pagination, error codes, a
// wrong secret. Prints one JSON object for tests/aws_cli_e2e.rs to check.
//
//   node cbor_scenario.mjs ENDPOINT ARN ZONE KEY_ID SECRET REGION CA_FILE
//
// The API is HTTPS; CA_FILE is the appliance's CA certificate the SDK is told to trust.
import {
  NetworkFirewallClient,
  StartFlowCaptureCommand,
  StartFlowFlushCommand,
  DescribeFlowOperationCommand,
  ListFlowOperationsCommand,
  ListFlowOperationResultsCommand,
  paginateListFlowOperationResults,
  paginateListFlowOperations,
} from "@aws-sdk/client-network-firewall";
import { SmithyRpcV2CborProtocol } from "@smithy/core/cbor";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { readFileSync } from "node:fs";
import { Agent } from "node:https";

const [endpoint, arn, zone, keyId, secret, region, caFile] = process.argv.slice(2);
const requestHandler = new NodeHttpHandler({ httpsAgent: new Agent({ ca: readFileSync(caFile) }) });

function client(secretAccessKey) {
  return new NetworkFirewallClient({
    endpoint,
    region,
    credentials: { accessKeyId: keyId, secretAccessKey },
    protocol: SmithyRpcV2CborProtocol,
    protocolSettings: { defaultNamespace: "com.amazonaws.networkfirewall" },
    maxAttempts: 1,
    requestHandler,
  });
}

const nf = client(secret);
const wire = { paths: new Set(), protocols: new Set(), contentTypes: new Set() };
nf.middlewareStack.add(
  (next) => async (args) => {
    const r = await next(args);
    wire.paths.add(args.request.path);
    wire.protocols.add(r.response.headers["smithy-protocol"]);
    wire.contentTypes.add(r.response.headers["content-type"]);
    return r;
  },
  { step: "finalizeRequest", name: "flowgateWireProbe", priority: "low" },
);

async function errorCode(f) {
  try {
    await f();
    return "no error";
  } catch (e) {
    // Errors outside the service model (e.g. the SigV4 ones) come back as plain Errors
    // carrying the body's `__type`.
    return e.name !== "Error" ? e.name : String(e.__type ?? e.message);
  }
}

async function settled(id) {
  for (let i = 0; i < 200; i++) {
    const d = await nf.send(new DescribeFlowOperationCommand({ FirewallArn: arn, FlowOperationId: id }));
    if (d.FlowOperationStatus !== "IN_PROGRESS") return d;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`operation ${id} did not settle`);
}

const row = (f) => [
  f.SourceAddress.AddressDefinition,
  f.DestinationAddress.AddressDefinition,
  String(f.SourcePort),
  String(f.DestinationPort),
  String(f.Protocol),
  f.PacketCount,
  f.ByteCount,
];

const out = {};
const filters = [{ SourceAddress: { AddressDefinition: "198.18.0.0/24" } }];
const started = await nf.send(
  new StartFlowCaptureCommand({ FirewallArn: arn, AvailabilityZone: zone, FlowFilters: filters }),
);
out.capture_id = started.FlowOperationId;
out.start_status = started.FlowOperationStatus;
const d = await settled(started.FlowOperationId);
out.describe = {
  type: d.FlowOperationType,
  status: d.FlowOperationStatus,
  zone: d.AvailabilityZone,
  filters: d.FlowOperation.FlowFilters,
  // The SDK turns the CBOR epoch-time tag into a Date: proof the wire type is right.
  timestamp_is_date: d.FlowRequestTimestamp instanceof Date,
  timestamp_epoch: d.FlowRequestTimestamp.getTime() / 1000,
};
out.result_page_sizes = [];
out.flows = [];
for await (const p of paginateListFlowOperationResults(
  { client: nf, pageSize: 4 },
  { FirewallArn: arn, FlowOperationId: started.FlowOperationId },
)) {
  out.result_page_sizes.push(p.Flows.length);
  out.flows.push(...p.Flows.map(row));
}
const flush = await nf.send(
  new StartFlowFlushCommand({
    FirewallArn: arn,
    FlowFilters: [{ SourceAddress: { AddressDefinition: "198.18.0.0/24" }, Protocols: ["17"] }],
  }),
);
out.flush_id = flush.FlowOperationId;
out.flush_status = (await settled(flush.FlowOperationId)).FlowOperationStatus;
const flushed = await nf.send(
  new ListFlowOperationResultsCommand({ FirewallArn: arn, FlowOperationId: flush.FlowOperationId }),
);
out.flushed = flushed.Flows.map(row);
out.operations = [];
for await (const p of paginateListFlowOperations({ client: nf, pageSize: 1 }, { FirewallArn: arn })) {
  out.operations.push(...p.FlowOperations.map((o) => [o.FlowOperationId, o.FlowOperationType]));
}
const unknown = "00000000-0000-4000-8000-000000000000";
out.errors = {
  bad_cidr: await errorCode(() =>
    nf.send(
      new StartFlowCaptureCommand({
        FirewallArn: arn,
        FlowFilters: [{ SourceAddress: { AddressDefinition: "198.18.0.1/33" } }],
      }),
    ),
  ),
  unknown_id: await errorCode(() =>
    nf.send(new DescribeFlowOperationCommand({ FirewallArn: arn, FlowOperationId: unknown })),
  ),
  wrong_arn: await errorCode(() => nf.send(new ListFlowOperationsCommand({ FirewallArn: arn + "-other" }))),
  wrong_secret: await errorCode(() =>
    client(secret + "x").send(new StartFlowCaptureCommand({ FirewallArn: arn, FlowFilters: filters })),
  ),
};
out.wire = {
  paths: [...wire.paths].sort(),
  protocols: [...wire.protocols],
  content_types: [...wire.contentTypes],
};
console.log(JSON.stringify(out));
