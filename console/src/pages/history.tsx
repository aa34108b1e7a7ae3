/**
 * Firewall operation history: captures and flushes of the retention window, newest first,
 * paginated with the API's tokens. Served by a fleet, it lists the working zone's or every
 * zone's operations (merged by the fleet, with a zone column).
 */
import { useEffect, useState } from "preact/hooks";
import type { PageProps } from "../app";
import { getOperation, listAllZones, listOperations, type Operation } from "../model";
import { operationHref, type ZonedSummary } from "../zones";
import { filterText } from "./operation";
import { Alert, Panel, Spinner, Status, time } from "../ui";

const PAGE = 20;

/** The zone filter's value for "every zone". */
const ALL = "*";

export function HistoryPage({ session, config, firewall }: PageProps) {
  const [type, setType] = useState("");
  const [zoneFilter, setZoneFilter] = useState(session.zone ?? "");
  const allZones = config.fleet && zoneFilter === ALL;
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined]);
  const [rows, setRows] = useState<(ZonedSummary & Partial<Operation>)[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState("");
  const [refresh, setRefresh] = useState(0);
  const token = tokens[tokens.length - 1];

  // The working zone changed in the top bar: list that zone.
  useEffect(() => {
    if (config.fleet && zoneFilter !== ALL && zoneFilter !== session.zone) {
      setZoneFilter(session.zone ?? "");
      setTokens([undefined]);
    }
  }, [session.zone]);

  useEffect(() => {
    let stale = false;
    if (allZones && !firewall?.arn) return;
    const list: Promise<{ operations: ZonedSummary[]; next_token: string | null }> = allZones
      ? listAllZones(session, firewall?.arn ?? "", type, token, PAGE)
      : listOperations(session, type, token, PAGE);
    list
      .then(async (r) => {
        const details = await Promise.all(
          r.operations.map((o) => getOperation(session, o.id, o.zone ?? session.zone).then((d) => ({ ...d, zone: o.zone ?? d.zone }), () => o)),
        );
        if (stale) return;
        setRows(details);
        setNext(r.next_token);
        setError("");
      })
      .catch((e: Error) => !stale && setError(e.message));
    return () => {
      stale = true;
    };
  }, [session, type, token, refresh, allZones, firewall?.arn]);

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
            {config.fleet && (
              <>
                <label class="inline" for="opzone">Zone</label>
                <select id="opzone" value={zoneFilter} onChange={(e) => { setZoneFilter(e.currentTarget.value); setTokens([undefined]); }}>
                  <option value={session.zone}>{session.zone}</option>
                  <option value={ALL}>All zones</option>
                </select>
              </>
            )}
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
                  {config.fleet && <th scope="col">Zone</th>}
                  <th scope="col">Type</th>
                  <th scope="col">Status</th>
                  <th scope="col">Requested</th>
                  <th scope="col">Completed</th>
                  <th scope="col">Flows</th>
                  <th scope="col">Filters</th>
                </tr>
              </thead>
              <tbody>
                {rows.length === 0 && <tr><td colSpan={config.fleet ? 8 : 7}>No operations yet.</td></tr>}
                {rows.map((o) => (
                  <tr key={o.id} data-op={o.id} data-type={o.type} data-status={o.status} data-zone={o.zone}>
                    <td><a href={config.fleet ? operationHref(o.id, o.zone) : operationHref(o.id)} class="mono">{o.id}</a></td>
                    {config.fleet && <td>{o.zone ?? "—"}</td>}
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
