/** Firewall operation history: captures and flushes of the retention window, newest first, paginated with the API's tokens. */
import { useEffect, useState } from "preact/hooks";
import type { PageProps } from "../app";
import { getOperation, listOperations, type Operation, type OperationSummary } from "../model";
import { filterText } from "./operation";
import { Alert, Panel, Spinner, Status, time } from "../ui";

const PAGE = 20;

export function HistoryPage({ session }: PageProps) {
  const [type, setType] = useState("");
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined]);
  const [rows, setRows] = useState<(OperationSummary & Partial<Operation>)[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState("");
  const [refresh, setRefresh] = useState(0);
  const token = tokens[tokens.length - 1];

  useEffect(() => {
    let stale = false;
    listOperations(session, type, token, PAGE)
      .then(async (r) => {
        const details = await Promise.all(r.operations.map((o) => getOperation(session, o.id).catch(() => o)));
        if (stale) return;
        setRows(details);
        setNext(r.next_token);
        setError("");
      })
      .catch((e: Error) => !stale && setError(e.message));
    return () => {
      stale = true;
    };
  }, [session, type, token, refresh]);

  // Progress: refresh while something runs.
  const running = rows?.some((r) => r.status === "IN_PROGRESS");
  useEffect(() => {
    if (!running) return;
    const id = setTimeout(() => setRefresh((n) => n + 1), 1000);
    return () => clearTimeout(id);
  }, [running, rows]);

  return (
    <>
      <div class="page-head">
        <div>
          <nav aria-label="Breadcrumb" class="crumbs">Firewalls / Firewall operations</nav>
          <h1 tabIndex={-1}>Firewall operations</h1>
        </div>
        <div class="page-actions">
          <a class="btn" href="#/operations/new/capture">Configure flow capture</a>
          <a class="btn btn-primary" href="#/operations/new/flush">Configure flow flush</a>
        </div>
      </div>
      <Panel
        title="Firewall operation history"
        actions={
          <>
            <label class="inline" for="optype">Type</label>
            <select id="optype" value={type} onChange={(e) => { setType(e.currentTarget.value); setTokens([undefined]); }}>
              <option value="">All</option>
              <option value="capture">Capture</option>
              <option value="flush">Flush</option>
            </select>
            <button class="btn" onClick={() => setRefresh((n) => n + 1)}>Refresh</button>
          </>
        }
      >
        <p class="muted small">Operations of the last 12 hours. One operation runs at a time per Availability Zone.</p>
        {error && <Alert kind="error" title="The history could not be read">{error}</Alert>}
        {!rows ? (
          <Spinner label="Loading operations…" />
        ) : (
          <div class="table-wrap">
            <table class="table" data-testid="history">
              <thead>
                <tr>
                  <th scope="col">Operation ID</th>
                  <th scope="col">Type</th>
                  <th scope="col">Status</th>
                  <th scope="col">Requested</th>
                  <th scope="col">Completed</th>
                  <th scope="col">Flows</th>
                  <th scope="col">Filters</th>
                </tr>
              </thead>
              <tbody>
                {rows.length === 0 && <tr><td colSpan={7}>No operations yet.</td></tr>}
                {rows.map((o) => (
                  <tr key={o.id} data-op={o.id} data-type={o.type} data-status={o.status}>
                    <td><a href={`#/operations/${o.id}`} class="mono">{o.id}</a></td>
                    <td>{o.type === "flush" ? "Flow flush" : "Flow capture"}</td>
                    <td>
                      <Status value={o.status} />
                      {o.message && <div class="small">{o.message}</div>}
                    </td>
                    <td>{time(o.requested_at)}</td>
                    <td>{o.status === "IN_PROGRESS" ? <Spinner label="running" /> : time(o.completed_at)}</td>
                    <td>{o.flows_matched ?? "—"}</td>
                    <td class="small">{o.request ? o.request.filters.map(filterText).join("; ") : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <div class="pager">
          <button class="btn" disabled={tokens.length < 2} onClick={() => setTokens(tokens.slice(0, -1))}>Previous page</button>
          <span class="muted small">Page {tokens.length}</span>
          <button class="btn" disabled={!next} onClick={() => next && setTokens([...tokens, next])}>Next page</button>
        </div>
      </Panel>
    </>
  );
}
