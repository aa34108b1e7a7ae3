import { describe, expect, it } from "vitest";
import { MAX_POINTS, SeriesRecorder } from "../src/series";
import { toCsv, toJson } from "../src/export";

const snap = (rx: number, active: number, d = 0, c = 0, r = 0) => ({
  flows: { active }, midstream: { dropped: d, continued: c, rejected: r }, ports: [{ rx_packets: rx }, { rx_packets: rx }],
});

describe("SeriesRecorder", () => {
  it("turns counters into rates between snapshots", () => {
    const r = new SeriesRecorder();
    r.add(snap(0, 1), 100);
    expect(r.series.t).toEqual([]);
    r.add(snap(100, 2, 4, 0, 10), 102);
    expect(r.series.packetsPerSec).toEqual([100]);
    expect(r.series.activeFlows).toEqual([2]);
    expect(r.series.midDropped).toEqual([2]);
    expect(r.series.midRejected).toEqual([5]);
  });
  it("starts over after a counter reset instead of going negative", () => {
    const r = new SeriesRecorder();
    r.add(snap(1000, 1), 1);
    r.add(snap(10, 1), 2);
    expect(r.series.packetsPerSec).toEqual([0]);
    r.add(snap(20, 1), 3);
    expect(r.series.packetsPerSec).toEqual([0, 20]);
  });
  it("keeps a bounded window", () => {
    const r = new SeriesRecorder();
    for (let i = 0; i < MAX_POINTS + 20; i++) r.add(snap(i, i), i);
    expect(r.series.t).toHaveLength(MAX_POINTS);
    expect(r.series.activeFlows[MAX_POINTS - 1]).toBe(MAX_POINTS + 19);
  });
});

const flow = { src: "198.18.0.1", dst: "198.18.0.2", src_port: 40000, dst_port: 7001, protocol: 6, age_seconds: 12,
  packets: 30, bytes: 2000, state: "ESTABLISHED", verdict: "pass", first_seen: "2026-01-01T00:00:00Z" };

describe("export", () => {
  it("writes CSV with a header and protocol names", () => {
    expect(toCsv([flow])).toBe(
      "source,source_port,destination,destination_port,protocol,age_seconds,packets,bytes,state\r\n" +
      "198.18.0.1,40000,198.18.0.2,7001,TCP,12,30,2000,ESTABLISHED\r\n");
  });
  it("quotes fields a spreadsheet would misread", () => {
    expect(toCsv([{ ...flow, state: '=cmd,"x"' }])).toContain('"=cmd,""x"""');
  });
  it("writes JSON with the operation id", () => {
    expect(JSON.parse(toJson("id-1", [flow]))).toEqual({ operation_id: "id-1", flows: [flow] });
  });
});
