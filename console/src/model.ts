/**
 * What the pages show, read from the API: the firewall (DescribeFirewall and
 * DescribeFirewallPolicy when the appliance has them, else the native `/v1/stats` and
 * `/v1/policy`), operations and their results.
 */
import { ApiError, aws, isAuthError, native, type Session } from "./api";
import { awsOperationType, rowsOfAwsList } from "./zones";

export interface RuleGroupRef {
  name: string;
  priority?: number;
  arn?: string;
  rules: number;
}

export interface Rule {
  sid: number;
  rev: number;
  action: string;
  msg: string;
  group: string;
  hits?: number;
}

export interface Firewall {
  name: string;
  arn: string;
  zones: string[];
  policyName: string;
  policyArn?: string;
  streamExceptionPolicy: string;
  ruleOrder: string;
  statefulDefaults: string[];
  ruleGroups: RuleGroupRef[];
  /** Zone → sync state (`IN_SYNC`, `PENDING`, …). */
  syncStates: Record<string, string>;
  status: string;
  policyEpoch?: number;
  lastReloadError?: string | null;
  /** Where this came from: `aws` (DescribeFirewall) or `native`. */
  source: "aws" | "native";
}

export interface Policy {
  epoch: number;
  summary: string;
  streamExceptionPolicy: string;
  ruleOrder: string;
  tcpIdleTimeoutSeconds: number | null;
  rules: Rule[];
  groups: RuleGroupRef[];
  lastReloadError: string | null;
}

interface NativePolicy {
  epoch: number;
  summary: string;
  stream_exception_policy?: string;
  rule_order?: string;
  tcp_idle_timeout_seconds?: number | null;
  stateful_rules?: Rule[];
  rule_groups?: { name: string; priority?: number; rules: number }[];
  last_reload_error: string | null;
}

/** `stream_exception_policy reject` from the summary of an older appliance. */
function fromSummary(summary: string, key: string): string {
  return new RegExp(`${key} ([a-z_]+)`).exec(summary)?.[1] ?? "unknown";
}

export async function loadPolicy(s: Session): Promise<Policy> {
  const p = await native<NativePolicy>(s, "GET", "/v1/policy");
  return {
    epoch: p.epoch,
    summary: p.summary,
    streamExceptionPolicy: (p.stream_exception_policy ?? fromSummary(p.summary, "stream_exception_policy")).toUpperCase(),
    ruleOrder: (p.rule_order ?? fromSummary(p.summary, "rule_order")).toUpperCase(),
    tcpIdleTimeoutSeconds: p.tcp_idle_timeout_seconds ?? null,
    rules: p.stateful_rules ?? [],
    groups: (p.rule_groups ?? []).map((g) => ({ name: g.name, priority: g.priority, rules: g.rules })),
    lastReloadError: p.last_reload_error,
  };
}

interface Stats {
  firewall_name: string;
  firewall_arn?: string;
  zone: string;
}

function isUnknownAction(e: unknown): boolean {
  return e instanceof ApiError && (e.type === "UnknownOperationException" || e.type === "InvalidActionException");
}

/** The firewall: DescribeFirewall (and DescribeFirewallPolicy) where the appliance has them, over the native facts. */
export async function loadFirewall(s: Session): Promise<Firewall> {
  const [stats, policy] = await Promise.all([native<Stats>(s, "GET", "/v1/stats"), loadPolicy(s)]);
  const base: Firewall = {
    name: stats.firewall_name,
    arn: stats.firewall_arn ?? "",
    zones: [stats.zone],
    policyName: "",
    streamExceptionPolicy: policy.streamExceptionPolicy,
    ruleOrder: policy.ruleOrder,
    statefulDefaults: [],
    ruleGroups: policy.groups,
    syncStates: { [stats.zone]: policy.lastReloadError ? "PENDING" : "IN_SYNC" },
    status: "READY",
    policyEpoch: policy.epoch,
    lastReloadError: policy.lastReloadError,
    source: "native",
  };
  // An appliance without DescribeFirewall answers UnknownOperationException: ask once per session.
  if (sessionStorage.getItem(NO_DESCRIBE) === "1") return base;
  try {
    return await describeFirewall(s, base);
  } catch (e) {
    if (!isUnknownAction(e)) throw e;
    sessionStorage.setItem(NO_DESCRIBE, "1");
    return base;
  }
}

const NO_DESCRIBE = "flowgate.console.noDescribeFirewall";

interface DescribeFirewallOut {
  Firewall?: { FirewallName?: string; FirewallArn?: string; FirewallPolicyArn?: string };
  FirewallStatus?: { Status?: string; SyncStates?: Record<string, { Config?: Record<string, { SyncStatus?: string }> ; Attachment?: { Status?: string } }> };
}

interface DescribePolicyOut {
  FirewallPolicyResponse?: { FirewallPolicyName?: string; FirewallPolicyArn?: string };
  FirewallPolicy?: {
    StatefulDefaultActions?: string[];
    StatefulRuleGroupReferences?: { ResourceArn: string; Priority?: number }[];
    StatefulEngineOptions?: { RuleOrder?: string; StreamExceptionPolicy?: string };
  };
}

async function describeFirewall(s: Session, base: Firewall): Promise<Firewall> {
  const fw = await aws<DescribeFirewallOut>(s, "DescribeFirewall", base.arn ? { FirewallArn: base.arn } : { FirewallName: base.name });
  const out: Firewall = { ...base, source: "aws" };
  out.name = fw.Firewall?.FirewallName ?? base.name;
  out.arn = fw.Firewall?.FirewallArn ?? base.arn;
  out.status = fw.FirewallStatus?.Status ?? base.status;
  const sync = fw.FirewallStatus?.SyncStates;
  if (sync && Object.keys(sync).length) {
    out.zones = Object.keys(sync);
    // A zone is IN_SYNC when every resource of its policy is; else the first state that is not.
    out.syncStates = Object.fromEntries(
      Object.entries(sync).map(([z, st]) => {
        const states = Object.values(st.Config ?? {}).map((c) => c.SyncStatus ?? "UNKNOWN");
        const worst = states.find((x) => x !== "IN_SYNC") ?? (states.length ? "IN_SYNC" : undefined);
        return [z, worst ?? st.Attachment?.Status ?? "UNKNOWN"];
      }),
    );
  }
  if (fw.Firewall?.FirewallPolicyArn) {
    out.policyArn = fw.Firewall.FirewallPolicyArn;
    out.policyName = out.policyArn.split("/").pop() ?? "";
    try {
      // A policy that comes from the appliance's files is not an API resource: describe
      // only a listed one (the native facts stand otherwise).
      const listed = await aws<{ FirewallPolicies?: { Arn: string }[] }>(s, "ListFirewallPolicies", {});
      if (!(listed.FirewallPolicies ?? []).some((p) => p.Arn === out.policyArn)) return out;
      const p = await aws<DescribePolicyOut>(s, "DescribeFirewallPolicy", { FirewallPolicyArn: out.policyArn });
      out.policyName = p.FirewallPolicyResponse?.FirewallPolicyName ?? "";
      const eng = p.FirewallPolicy?.StatefulEngineOptions;
      if (eng?.StreamExceptionPolicy) out.streamExceptionPolicy = eng.StreamExceptionPolicy.toUpperCase();
      if (eng?.RuleOrder) out.ruleOrder = eng.RuleOrder;
      out.statefulDefaults = p.FirewallPolicy?.StatefulDefaultActions ?? [];
      const refs = p.FirewallPolicy?.StatefulRuleGroupReferences;
      if (refs?.length) {
        out.ruleGroups = refs.map((r) => {
          const name = r.ResourceArn.split("/").pop() ?? r.ResourceArn;
          const known = base.ruleGroups.find((g) => g.name === name);
          return { name, arn: r.ResourceArn, priority: r.Priority, rules: known?.rules ?? 0 };
        });
      }
    } catch (e) {
      if (isAuthError(e)) throw e;
      /* the native facts stand */
    }
  }
  return out;
}

// ---- operations ----

export interface OperationSummary {
  id: string;
  type: "capture" | "flush";
  status: string;
  requested_at: string;
  requested_at_epoch: number;
}

export interface WorkerProgress {
  worker: number;
  scan: string;
  scanned: number;
  matched: number;
}

export interface NativeFilter {
  src: string | null;
  dst: string | null;
  src_port: string | null;
  dst_port: string | null;
  protocols: string[];
}

export interface Operation extends OperationSummary {
  message: string | null;
  detail: string | null;
  zone: string;
  caller: string;
  completed_at: string | null;
  duration_seconds: number | null;
  request: { filters: NativeFilter[]; min_age_seconds: number; either_direction: boolean; states: string[]; verdict_changed: boolean };
  workers: WorkerProgress[];
  flows_matched: number;
  results_kept: number;
}

export interface Flow {
  src: string;
  dst: string;
  src_port: number;
  dst_port: number;
  protocol: number;
  age_seconds: number;
  packets: number;
  bytes: number;
  state: string;
  verdict: string;
  first_seen: string;
}

export interface ResultsPage {
  flows: Flow[];
  next_token: string | null;
  status: string;
  flows_matched: number;
  results_kept: number;
}

export function listOperations(s: Session, type: string, token: string | undefined, max = 50) {
  return native<{ operations: OperationSummary[]; next_token: string | null }>(s, "GET", "/v1/operations", {
    type: type || undefined,
    max,
    token,
  });
}

/** An operation; on a fleet, of `zone`'s appliance (default: the session's zone). */
export function getOperation(s: Session, id: string, zone = s.zone): Promise<Operation> {
  return native<Operation>(s, "GET", `/v1/operations/${encodeURIComponent(id)}`, {}, undefined, zone);
}

/** Every zone's operations, merged newest first by the fleet (AWS `ListFlowOperations`). */
export async function listAllZones(s: Session, firewallArn: string, type: string, token: string | undefined, max = 50) {
  const out = await aws<Parameters<typeof rowsOfAwsList>[0] & { NextToken?: string }>(s, "ListFlowOperations", {
    FirewallArn: firewallArn,
    MaxResults: max,
    ...(awsOperationType(type) ? { FlowOperationType: awsOperationType(type) } : {}),
    ...(token ? { NextToken: token } : {}),
  });
  return { operations: rowsOfAwsList(out), next_token: out.NextToken ?? null };
}

export function getResults(s: Session, id: string, token: string | undefined, max = 100): Promise<ResultsPage> {
  return native<ResultsPage>(s, "GET", `/v1/operations/${encodeURIComponent(id)}/results`, { max, token });
}

/** Every result of an operation (for export), page by page. */
export async function allResults(s: Session, id: string): Promise<Flow[]> {
  const out: Flow[] = [];
  let token: string | undefined;
  do {
    const page = await getResults(s, id, token, 1000);
    out.push(...page.flows);
    token = page.next_token ?? undefined;
  } while (token);
  return out;
}

/** The operation's filters in the AWS shape (what the form is pre-filled from). */
export function awsFiltersOf(op: Operation) {
  return {
    MinimumFlowAgeInSeconds: op.request.min_age_seconds,
    FlowFilters: op.request.filters.map((f) => ({
      ...(f.src ? { SourceAddress: { AddressDefinition: f.src } } : {}),
      ...(f.dst ? { DestinationAddress: { AddressDefinition: f.dst } } : {}),
      ...(f.src_port ? { SourcePort: f.src_port } : {}),
      ...(f.dst_port ? { DestinationPort: f.dst_port } : {}),
      ...(f.protocols.length ? { Protocols: f.protocols.map(String) } : {}),
    })),
  };
}

export const PROTOCOL_NAMES: Record<number, string> = { 1: "ICMP", 6: "TCP", 17: "UDP", 58: "IPv6-ICMP", 132: "SCTP" };
export const protocolName = (p: number | string) => PROTOCOL_NAMES[Number(p)] ?? String(p);
