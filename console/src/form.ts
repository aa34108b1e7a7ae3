/**
 * The flow capture / flush form: its model, the console's own rules (a zone, 1–20 filters,
 * a source or destination in each), the AWS request it becomes, the filters it can be
 * pre-filled from, and where an API validation message belongs. Addresses, ports and ages
 * are judged by the API, whose messages are shown next to the field they name.
 */

export const MAX_FILTERS = 20;

/** The protocols the console offers, with their IANA numbers (what the API takes). */
export const PROTOCOLS: { name: string; number: string }[] = [
  { name: "ICMP", number: "1" },
  { name: "TCP", number: "6" },
  { name: "UDP", number: "17" },
  { name: "IPv6-ICMP", number: "58" },
  { name: "SCTP", number: "132" },
];

export interface FilterRow {
  source: string;
  destination: string;
  sourcePort: string;
  destinationPort: string;
  /** IANA numbers as strings. */
  protocols: string[];
}

export interface OperationForm {
  zone: string;
  minAge: string;
  filters: FilterRow[];
}

/** Field keys: `zone`, `minAge`, `filters`, `filters.<i>.<field>`, `form` (no field). */
export type FieldErrors = Record<string, string>;

export function emptyFilter(): FilterRow {
  return { source: "", destination: "", sourcePort: "", destinationPort: "", protocols: [] };
}

export function emptyForm(zone: string): OperationForm {
  return { zone, minAge: "", filters: [emptyFilter()] };
}

export function canAddFilter(form: OperationForm): boolean {
  return form.filters.length < MAX_FILTERS;
}

/** The console's rules; an empty result means the request may be sent. */
export function validate(form: OperationForm): FieldErrors {
  const errors: FieldErrors = {};
  if (!form.zone.trim()) errors.zone = "Choose an Availability Zone.";
  if (form.filters.length === 0) errors.filters = "Add at least one filter.";
  if (form.filters.length > MAX_FILTERS) {
    errors.filters = `At most ${MAX_FILTERS} filters are allowed (${form.filters.length} given).`;
  }
  form.filters.forEach((f, i) => {
    if (!f.source.trim() && !f.destination.trim()) {
      errors[`filters.${i}.source`] = "Enter a source address, a destination address, or both.";
    }
  });
  const age = form.minAge.trim();
  if (age !== "" && !/^\d+$/.test(age)) errors.minAge = "Enter a whole number of seconds (0 or more).";
  return errors;
}

export interface AwsFlowFilter {
  SourceAddress?: { AddressDefinition: string };
  DestinationAddress?: { AddressDefinition: string };
  SourcePort?: string;
  DestinationPort?: string;
  Protocols?: string[];
}

/** The members of StartFlowCapture / StartFlowFlush for this form (without FirewallArn). */
export function toAwsRequest(form: OperationForm): Record<string, unknown> {
  const filters: AwsFlowFilter[] = form.filters.map((f) => {
    const out: AwsFlowFilter = {};
    if (f.source.trim()) out.SourceAddress = { AddressDefinition: f.source.trim() };
    if (f.destination.trim()) out.DestinationAddress = { AddressDefinition: f.destination.trim() };
    if (f.sourcePort.trim()) out.SourcePort = f.sourcePort.trim();
    if (f.destinationPort.trim()) out.DestinationPort = f.destinationPort.trim();
    if (f.protocols.length) out.Protocols = [...f.protocols];
    return out;
  });
  const req: Record<string, unknown> = { AvailabilityZone: form.zone.trim(), FlowFilters: filters };
  const age = form.minAge.trim();
  if (age !== "") req.MinimumFlowAgeInSeconds = Number(age);
  return req;
}

const PROTOCOL_NAMES: Record<string, string> = { icmp: "1", tcp: "6", udp: "17", icmpv6: "58", "ipv6-icmp": "58", sctp: "132" };

/** A form pre-filled from an operation's AWS filters (DescribeFlowOperation's `FlowOperation`). */
export function fromAwsOperation(zone: string, op: { MinimumFlowAgeInSeconds?: number; FlowFilters?: AwsFlowFilter[] }): OperationForm {
  const filters = (op.FlowFilters ?? []).map((f) => ({
    source: f.SourceAddress?.AddressDefinition ?? "",
    destination: f.DestinationAddress?.AddressDefinition ?? "",
    sourcePort: f.SourcePort && f.SourcePort.toUpperCase() !== "ANY" ? f.SourcePort : "",
    destinationPort: f.DestinationPort && f.DestinationPort.toUpperCase() !== "ANY" ? f.DestinationPort : "",
    protocols: (f.Protocols ?? []).map((p) => PROTOCOL_NAMES[p.toLowerCase()] ?? p),
  }));
  return {
    zone,
    minAge: op.MinimumFlowAgeInSeconds ? String(op.MinimumFlowAgeInSeconds) : "",
    filters: filters.length ? filters : [emptyFilter()],
  };
}

const MEMBER_FIELDS: Record<string, keyof FilterRow> = {
  SourceAddress: "source",
  DestinationAddress: "destination",
  SourcePort: "sourcePort",
  DestinationPort: "destinationPort",
  Protocols: "protocols",
};

/**
 * The form field an API message is about: `FlowFilters[2].DestinationPort: …` →
 * `filters.2.destinationPort`; `MinimumFlowAgeInSeconds: …` → `minAge`; `AvailabilityZone…` →
 * `zone`; `FlowFilters: …` → `filters`; anything else → `form`.
 */
export function fieldOfApiMessage(message: string): string {
  const m = /^FlowFilters\[(\d+)\]\.([A-Za-z]+)/.exec(message);
  if (m) {
    const field = MEMBER_FIELDS[m[2]];
    return field ? `filters.${m[1]}.${field}` : `filters.${m[1]}.source`;
  }
  if (/^FlowFilters\b/.test(message)) return "filters";
  if (/^MinimumFlowAgeInSeconds\b/.test(message)) return "minAge";
  if (/^AvailabilityZone/.test(message)) return "zone";
  return "form";
}

/** What a flush does to matched connections under each stream exception policy. */
export function streamExceptionEffect(policy: string): string {
  switch (policy.toUpperCase()) {
    case "REJECT":
      return "The next packet of each matched TCP connection is answered with a TCP reset: clients see their connection reset at once and reconnect, and the new connection is judged by the current rules. Other matched flows are dropped midstream.";
    case "DROP":
      return "The next packets of each matched connection are dropped as midstream traffic: clients stall until their own timeouts, then reconnect.";
    case "CONTINUE":
      return "The next packets of each matched connection continue as midstream traffic, judged by the current rules without connection state: connections the rules still allow keep working.";
    default:
      return "The next packets of each matched connection are handled by the stream exception policy.";
  }
}
