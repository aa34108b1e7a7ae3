/** Capture and flush results as CSV (RFC 4180) or JSON files, for download. */
import { protocolName, type Flow } from "./model";

export const CSV_COLUMNS = [
  "source", "source_port", "destination", "destination_port", "protocol", "age_seconds", "packets", "bytes", "state",
] as const;

function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) || /^[=+\-@\t]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(flows: Flow[]): string {
  const rows = flows.map((f) =>
    [f.src, f.src_port, f.dst, f.dst_port, protocolName(f.protocol), f.age_seconds, f.packets, f.bytes, f.state].map(csvField).join(","),
  );
  return [CSV_COLUMNS.join(","), ...rows].join("\r\n") + "\r\n";
}

export function toJson(operationId: string, flows: Flow[]): string {
  return JSON.stringify({ operation_id: operationId, flows }, null, 2) + "\n";
}

/** Starts a download of `text` as `name`. */
export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
