/**
 * The Availability Zone of a console served by a fleet (flowgate-fleet: one firewall over
 * one appliance per zone). As in the AWS console, the zone comes first: the console asks
 * for it before anything else, every flow operation it starts carries it, and every
 * per-appliance read (statistics, charts, policy, an operation and its results) goes to
 * that zone's appliance through the fleet. The history can list every zone (the fleet
 * merges them). Served by one appliance, none of this applies: no selector, no zone header.
 */
import type { ConsoleConfig, Session } from "./api";
import type { OperationSummary } from "./model";

/** The zone the console works in, or `null` when a fleet's console must ask for it first. */
export function workingZone(config: ConsoleConfig, session: Session): string | null {
  if (!config.fleet) return session.zone ?? "";
  return session.zone && config.zones.includes(session.zone) ? session.zone : null;
}

/** `session` working in `zone` (a fleet's console; unknown zones are ignored). */
export function inZone(config: ConsoleConfig, session: Session, zone: string): Session {
  if (!config.fleet || !config.zones.includes(zone)) return session;
  return { ...session, zone };
}

/** The zones the operation form offers: the working zone on a fleet, else every zone known. */
export function formZones(config: ConsoleConfig, session: Session, firewallZones: string[]): string[] {
  if (config.fleet) return session.zone ? [session.zone] : [];
  return [...new Set([...firewallZones, ...config.zones])];
}

/** A history row that knows its zone (the merged list of a fleet). */
export interface ZonedSummary extends OperationSummary {
  zone?: string;
}

interface AwsFlowOperation {
  FlowOperationId: string;
  FlowOperationType?: string;
  FlowOperationStatus?: string;
  FlowRequestTimestamp?: number | string;
  AvailabilityZone?: string;
}

/** The rows of a `ListFlowOperations` answer (every zone, merged newest first by the fleet). */
export function rowsOfAwsList(out: { FlowOperations?: AwsFlowOperation[] }): ZonedSummary[] {
  return (out.FlowOperations ?? []).map((o) => {
    const epoch = typeof o.FlowRequestTimestamp === "number" ? o.FlowRequestTimestamp : Date.parse(String(o.FlowRequestTimestamp ?? "")) / 1000;
    return {
      id: o.FlowOperationId,
      type: o.FlowOperationType === "FLOW_FLUSH" ? "flush" : "capture",
      status: o.FlowOperationStatus ?? "UNKNOWN",
      requested_at: Number.isFinite(epoch) ? new Date(epoch * 1000).toISOString() : "",
      requested_at_epoch: Number.isFinite(epoch) ? epoch : 0,
      zone: o.AvailabilityZone,
    };
  });
}

/** `ListFlowOperations`' `FlowOperationType` for the history's type filter. */
export function awsOperationType(type: string): string | undefined {
  return type === "capture" ? "FLOW_CAPTURE" : type === "flush" ? "FLOW_FLUSH" : undefined;
}

/** The hash of an operation's page; on a fleet it names the zone, so the console switches to it. */
export function operationHref(id: string, zone?: string): string {
  return zone ? `#/operations/${id}?zone=${encodeURIComponent(zone)}` : `#/operations/${id}`;
}
