/**
 * Live series for the Firewall page's charts, from successive `/v1/stats` snapshots:
 * packets per second (received on all ports), active flows, and midstream packets per
 * second by stream exception outcome. Counters become rates between two snapshots; a
 * counter that went down (appliance restarted) starts over instead of showing a negative.
 */

export interface StatsSnapshot {
  flows: { active: number };
  midstream: { dropped: number; continued: number; rejected: number };
  ports: { rx_packets: number }[];
}

export interface Series {
  /** Seconds since the epoch. */
  t: number[];
  packetsPerSec: number[];
  activeFlows: number[];
  midDropped: number[];
  midContinued: number[];
  midRejected: number[];
}

/** Five minutes at one sample every two seconds. */
export const MAX_POINTS = 150;

export function emptySeries(): Series {
  return { t: [], packetsPerSec: [], activeFlows: [], midDropped: [], midContinued: [], midRejected: [] };
}

interface Last {
  at: number;
  rx: number;
  dropped: number;
  continued: number;
  rejected: number;
}

const rate = (now: number, before: number, dt: number) => (now >= before && dt > 0 ? (now - before) / dt : 0);

/** Accumulates snapshots into bounded series. */
export class SeriesRecorder {
  readonly series: Series = emptySeries();
  private last: Last | null = null;

  /** Adds the snapshot taken at `at` (seconds). The first one only sets the baseline. */
  add(s: StatsSnapshot, at: number): void {
    const cur: Last = {
      at,
      rx: s.ports.reduce((a, p) => a + p.rx_packets, 0),
      dropped: s.midstream.dropped,
      continued: s.midstream.continued,
      rejected: s.midstream.rejected,
    };
    const prev = this.last;
    this.last = cur;
    if (!prev || at <= prev.at) return;
    const dt = at - prev.at;
    const x = this.series;
    x.t.push(at);
    x.packetsPerSec.push(rate(cur.rx, prev.rx, dt));
    x.activeFlows.push(s.flows.active);
    x.midDropped.push(rate(cur.dropped, prev.dropped, dt));
    x.midContinued.push(rate(cur.continued, prev.continued, dt));
    x.midRejected.push(rate(cur.rejected, prev.rejected, dt));
    if (x.t.length > MAX_POINTS) {
      for (const k of Object.keys(x) as (keyof Series)[]) x[k].splice(0, x[k].length - MAX_POINTS);
    }
  }
}
