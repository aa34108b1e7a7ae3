// The capture / flush form's own rules, the AWS request it sends, and where API messages land.
import { describe, expect, it } from "vitest";
import {
  MAX_FILTERS, canAddFilter, emptyFilter, fieldOfApiMessage, fromAwsOperation,
  streamExceptionEffect, toAwsRequest, validate,
} from "../src/form";

const row = (over: Partial<ReturnType<typeof emptyFilter>> = {}) => ({ ...emptyFilter(), ...over });

describe("validate", () => {
  it("accepts a filter with only a destination", () => {
    expect(validate({ zone: "z", minAge: "", filters: [row({ destination: "198.18.0.2/32" })] })).toEqual({});
  });
  it("needs a zone", () => {
    expect(validate({ zone: " ", minAge: "", filters: [row({ source: "198.18.0.1/32" })] }).zone).toMatch(/Availability Zone/);
  });
  it("needs a source or destination in every filter, naming the row", () => {
    const e = validate({ zone: "z", minAge: "", filters: [row({ source: "198.18.0.1/32" }), row({ destinationPort: "80" })] });
    expect(Object.keys(e)).toEqual(["filters.1.source"]);
  });
  it("refuses 21 filters and allows 20", () => {
    const f = (n: number) => Array.from({ length: n }, () => row({ source: "198.18.0.1/32" }));
    expect(validate({ zone: "z", minAge: "", filters: f(MAX_FILTERS) })).toEqual({});
    expect(validate({ zone: "z", minAge: "", filters: f(MAX_FILTERS + 1) }).filters).toMatch(/At most 20/);
    expect(canAddFilter({ zone: "z", minAge: "", filters: f(MAX_FILTERS) })).toBe(false);
    expect(canAddFilter({ zone: "z", minAge: "", filters: f(19) })).toBe(true);
  });
  it("needs no filter-less form", () => {
    expect(validate({ zone: "z", minAge: "", filters: [] }).filters).toMatch(/at least one/);
  });
  it("takes only whole seconds as minimum age", () => {
    const base = { zone: "z", filters: [row({ source: "198.18.0.1/32" })] };
    expect(validate({ ...base, minAge: "300" })).toEqual({});
    expect(validate({ ...base, minAge: "-1" }).minAge).toBeDefined();
    expect(validate({ ...base, minAge: "1.5" }).minAge).toBeDefined();
  });
  it("leaves addresses to the API (its message is the one shown)", () => {
    expect(validate({ zone: "z", minAge: "", filters: [row({ source: "not-a-cidr" })] })).toEqual({});
  });
});

describe("toAwsRequest", () => {
  it("sends only the members given, trimmed", () => {
    const req = toAwsRequest({
      zone: " lab-zone-a ", minAge: "300",
      filters: [row({ source: " 198.18.0.1/32 ", destinationPort: "7001", protocols: ["6"] }), row({ destination: "2001:2::2/128" })],
    });
    expect(req).toEqual({
      AvailabilityZone: "lab-zone-a",
      MinimumFlowAgeInSeconds: 300,
      FlowFilters: [
        { SourceAddress: { AddressDefinition: "198.18.0.1/32" }, DestinationPort: "7001", Protocols: ["6"] },
        { DestinationAddress: { AddressDefinition: "2001:2::2/128" } },
      ],
    });
  });
  it("round-trips through an operation's filters (capture then flush with the same filters)", () => {
    const form = { zone: "z", minAge: "60", filters: [row({ source: "198.18.0.1/32", destination: "198.18.0.2/32", sourcePort: "1024:65535", destinationPort: "7001", protocols: ["6", "17"] })] };
    const req = toAwsRequest(form) as { MinimumFlowAgeInSeconds: number; FlowFilters: [] };
    expect(fromAwsOperation("z", req)).toEqual(form);
  });
  it("maps protocol names and ANY ports back to the form", () => {
    const f = fromAwsOperation("z", { FlowFilters: [{ SourceAddress: { AddressDefinition: "198.18.0.0/24" }, SourcePort: "ANY", Protocols: ["tcp", "ICMPv6"] }] });
    expect(f.filters[0]).toEqual(row({ source: "198.18.0.0/24", protocols: ["6", "58"] }));
    expect(fromAwsOperation("z", {}).filters).toHaveLength(1);
  });
});

describe("fieldOfApiMessage", () => {
  it.each([
    ["FlowFilters[0].SourceAddress.AddressDefinition: '198.18.0.1/24' is not a valid CIDR", "filters.0.source"],
    ["FlowFilters[2].DestinationPort: '70000' is not a valid port", "filters.2.destinationPort"],
    ["FlowFilters[1].Protocols[1]: '256' is not a valid protocol", "filters.1.protocols"],
    ["FlowFilters: at most 20 filters are allowed, got 21", "filters"],
    ["MinimumFlowAgeInSeconds: -1 is out of range", "minAge"],
    ["AvailabilityZone: 'x' is not this firewall's zone", "zone"],
    ["an operation is already in progress", "form"],
  ])("%s", (msg, field) => expect(fieldOfApiMessage(msg)).toBe(field));
});

describe("streamExceptionEffect", () => {
  it("says what each policy does to flushed connections", () => {
    expect(streamExceptionEffect("reject")).toMatch(/reset/);
    expect(streamExceptionEffect("DROP")).toMatch(/dropped/);
    expect(streamExceptionEffect("CONTINUE")).toMatch(/continue/);
  });
});
