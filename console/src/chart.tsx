/** A uPlot time-series chart sized to its container; its text alternative is the latest values. */
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

export interface Line {
  label: string;
  color: string;
  values: number[];
}

export function Chart({ title, t, lines, unit }: { title: string; t: number[]; lines: Line[]; unit: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current!;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 180,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{ stroke: "#5f6b7a", grid: { stroke: "#e9ebed" } }, { stroke: "#5f6b7a", grid: { stroke: "#e9ebed" }, size: 60 }],
      series: [{}, ...lines.map((l) => ({ label: l.label, stroke: l.color, width: 2, points: { show: false } }))],
    };
    plot.current = new uPlot(opts, data(t, lines), el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: 180 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [lines.length]);

  useEffect(() => {
    plot.current?.setData(data(t, lines));
  });

  const latest = lines.map((l) => `${l.label} ${fmt(l.values[l.values.length - 1])}`).join(", ");
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} class="chart-box" data-points={t.length} role="img" aria-label={`${title} over the last minutes; latest: ${latest || "no data yet"} ${unit}`} />
    </figure>
  );
}

/** Copies: uPlot keeps what it is given, and the recorder keeps appending to its arrays. */
function data(t: number[], lines: Line[]): uPlot.AlignedData {
  return [t.slice(), ...lines.map((l) => l.values.slice())];
}

function fmt(v: number | undefined): string {
  if (v === undefined) return "—";
  return v >= 100 ? Math.round(v).toLocaleString() : v.toFixed(1);
}
