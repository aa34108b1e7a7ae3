// The zone of a fleet-served console: asked first, carried by every per-appliance call and
// operation; absent (and never asked) on a single appliance.
import { describe, expect, it } from "vitest";
import type { ConsoleConfig, Session } from "../src/api";
import { awsOperationType, formZones, inZone, operationHref, rowsOfAwsList, workingZone } from "../src/zones";

const fleet: ConsoleConfig = { region: "us-east-1", zones: ["lab-zone-a", "lab-zone-b"], fleet: true };
const appliance: ConsoleConfig = { region: "us-east-1", zones: ["lab-zone-a"], fleet: false };
const session: Session = { accessKeyId: "AKIA", secretAccessKey: "s", region: "us-east-1" };

describe("workingZone", () => {
  it("asks first on a fleet", () => {
    expect(workingZone(fleet, session)).toBeNull();
    expect(workingZone(fleet, { ...session, zone: "lab-zone-c" })).toBeNull();
    expect(workingZone(fleet, { ...session, zone: "lab-zone-b" })).toBe("lab-zone-b");
  });
  it("never asks on an appliance", () => {
    expect(workingZone(appliance, session)).toBe("");
  });
});

describe("inZone", () => {
  it("switches to a zone of the fleet only", () => {
    expect(inZone(fleet, session, "lab-zone-b").zone).toBe("lab-zone-b");
    expect(inZone(fleet, session, "nope")).toBe(session);
    expect(inZone(appliance, session, "lab-zone-a")).toBe(session);
  });
});

describe("formZones", () => {
  it("offers only the working zone on a fleet", () => {
    expect(formZones(fleet, { ...session, zone: "lab-zone-b" }, ["lab-zone-a", "lab-zone-b"])).toEqual(["lab-zone-b"]);
  });
  it("offers every known zone on an appliance, as before", () => {
    expect(formZones(appliance, session, ["lab-zone-a", "x"])).toEqual(["lab-zone-a", "x"]);
  });
});

describe("rowsOfAwsList", () => {
  it("maps the merged list with each row's zone", () => {
    const rows = rowsOfAwsList({
      FlowOperations: [
        { FlowOperationId: "b1", FlowOperationType: "FLOW_FLUSH", FlowOperationStatus: "COMPLETED", FlowRequestTimestamp: 1700000001, AvailabilityZone: "lab-zone-b" },
        { FlowOperationId: "a1", FlowOperationType: "FLOW_CAPTURE", FlowOperationStatus: "IN_PROGRESS", FlowRequestTimestamp: 1700000000.5, AvailabilityZone: "lab-zone-a" },
      ],
    });
    expect(rows.map((r) => [r.id, r.type, r.status, r.zone])).toEqual([
      ["b1", "flush", "COMPLETED", "lab-zone-b"],
      ["a1", "capture", "IN_PROGRESS", "lab-zone-a"],
    ]);
    expect(rows[1].requested_at).toBe("2023-11-14T22:13:20.500Z");
    expect(rowsOfAwsList({})).toEqual([]);
  });
  it("maps the type filter", () => {
    expect([awsOperationType("capture"), awsOperationType("flush"), awsOperationType("")]).toEqual(["FLOW_CAPTURE", "FLOW_FLUSH", undefined]);
  });
});

describe("operationHref", () => {
  it("names the zone on a fleet", () => {
    expect(operationHref("id-1", "lab-zone-b")).toBe("#/operations/id-1?zone=lab-zone-b");
    expect(operationHref("id-1")).toBe("#/operations/id-1");
  });
});
