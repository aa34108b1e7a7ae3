/** Small shared pieces: status badges, alerts, key-value panels, times. */
import type { ComponentChildren } from "preact";

const STATUS_CLASS: Record<string, string> = {
  COMPLETED: "ok",
  IN_SYNC: "ok",
  READY: "ok",
  IN_PROGRESS: "info",
  PENDING: "info",
  COMPLETED_WITH_ERRORS: "warn",
  FAILED: "err",
};

export function Status({ value }: { value: string }) {
  return <span class={`badge badge-${STATUS_CLASS[value] ?? "neutral"}`}>{value.replace(/_/g, " ")}</span>;
}

export function Alert({ kind, title, children }: { kind: "error" | "warning" | "info" | "success"; title?: string; children?: ComponentChildren }) {
  return (
    <div class={`alert alert-${kind}`} role={kind === "error" ? "alert" : "status"}>
      {title && <strong>{title}</strong>}
      {children && <div>{children}</div>}
    </div>
  );
}

export function Panel({ title, actions, children, id }: { title: string; actions?: ComponentChildren; children: ComponentChildren; id?: string }) {
  const hid = id ?? `panel-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return (
    <section class="panel" aria-labelledby={hid}>
      <header class="panel-head">
        <h2 id={hid}>{title}</h2>
        {actions && <div class="panel-actions">{actions}</div>}
      </header>
      <div class="panel-body">{children}</div>
    </section>
  );
}

export function KeyValues({ items }: { items: [string, ComponentChildren][] }) {
  return (
    <dl class="kv">
      {items.map(([k, v]) => (
        <div class="kv-item" key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

export function time(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function age(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

export function Spinner({ label }: { label: string }) {
  return (
    <span class="spinner" role="status">
      <span class="spinner-dot" aria-hidden="true" />
      {label}
    </span>
  );
}
