/** One operation: its details, progress while it runs, and its results (sortable, paginated, exportable). */
import { useEffect, useMemo, useState } from "preact/hooks";
import type { PageProps } from "../app";
import { allResults, getOperation, getResults, protocolName, type Flow, type NativeFilter, type Operation, type ResultsPage } from "../model";
import { download, toCsv, toJson } from "../export";
import { Alert, KeyValues, Panel, Spinner, Status, age, time } from "../ui";

const PAGE = 50;

export function filterText(f: NativeFilter): string {
  const side = (a: string | null, p: string | null) => `${a ?? "any"}${p && p !== "ANY" ? `:${p}` : ""}`;
  const protos = f.protocols.length ? ` ${f.protocols.map(protocolName).join("/")}` : "";
  return `${side(f.src, f.src_port)} → ${side(f.dst, f.dst_port)}${protos}`;
}

type SortKey = "src" | "dst" | "src_port" | "dst_port" | "protocol" | "age_seconds" | "packets" | "bytes" | "state";
const COLUMNS: [SortKey, string][] = [
  ["src", "Source"], ["src_port", "Source port"], ["dst", "Destination"], ["dst_port", "Destination port"],
  ["protocol", "Protocol"], ["age_seconds", "Age"], ["packets", "Packets"], ["bytes", "Bytes"], ["state", "State"],
];

export function OperationPage({ session, id }: PageProps & { id: string }) {
  const [op, setOp] = useState<Operation | null>(null);
  const [error, setError] = useState("");
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined]);
  const [page, setPage] = useState<ResultsPage | null>(null);
  const [sort, setSort] = useState<{ key: SortKey; asc: boolean }>({ key: "packets", asc: false });
  const [exporting, setExporting] = useState(false);

  useEffect(() => {
    setOp(null);
    setPage(null);
    setTokens([undefined]);
    setError("");
  }, [id]);

  // Details; polled while the operation runs.
  useEffect(() => {
    let timer = 0;
    let stopped = false;
    const load = () =>
      getOperation(session, id).then(
        (o) => {
          if (stopped) return;
          setOp(o);
          if (o.status === "IN_PROGRESS") timer = window.setTimeout(load, 1000);
        },
        (e: Error) => !stopped && setError(e.message),
      );
    load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [session, id]);

  const token = tokens[tokens.length - 1];
  const settled = op && op.status !== "IN_PROGRESS";
  useEffect(() => {
    if (!settled) return;
    getResults(session, id, token, PAGE).then(setPage, (e: Error) => setError(e.message));
  }, [session, id, token, settled]);

  const flows = useMemo(() => {
    const rows = [...(page?.flows ?? [])];
    const { key, asc } = sort;
    rows.sort((a, b) => {
      const x = a[key], y = b[key];
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
      return asc ? c : -c;
    });
    return rows;
  }, [page, sort]);

  const exportAs = async (fmt: "csv" | "json") => {
    setExporting(true);
    try {
      const all: Flow[] = await allResults(session, id);
      if (fmt === "csv") download(`flowgate-${id}.csv`, "text/csv", toCsv(all));
      else download(`flowgate-${id}.json`, "application/json", toJson(id, all));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setExporting(false);
    }
  };

  const isCapture = op?.type === "capture";
  return (
    <>
      <div class="page-head">
        <div>
          <nav aria-label="Breadcrumb" class="crumbs"><a href="#/operations">Firewall operations</a> / {id}</nav>
          <h1 tabIndex={-1}>{op ? (isCapture ? "Flow capture" : "Flow flush") : "Operation"} <span class="mono small">{id}</span></h1>
        </div>
        <div class="page-actions">
          {op && isCapture && (
            <a class="btn btn-primary" href={`#/operations/new/flush?from=${id}`}>Configure flow flush</a>
          )}
          {op && <a class="btn" href={`#/operations/new/capture?from=${id}`}>Capture again</a>}
        </div>
      </div>
      {error && <Alert kind="error" title="The operation could not be read">{error}</Alert>}
      {!op ? (
        !error && <Spinner label="Loading the operation…" />
      ) : (
        <>
          <Panel title="Details">
            <KeyValues
              items={[
                ["Status", <span data-testid="op-status"><Status value={op.status} /></span>],
                ["Status message", op.message ? <span>{op.message}{op.detail && <span class="muted small"> — {op.detail}</span>}</span> : "—"],
                ["Type", isCapture ? "FLOW_CAPTURE" : "FLOW_FLUSH"],
                ["Availability Zone", op.zone],
                ["Requested", time(op.requested_at)],
                ["Completed", time(op.completed_at)],
                ["Duration", op.duration_seconds != null ? `${op.duration_seconds.toFixed(3)} s` : "—"],
                ["Requested by", op.caller],
                ["Minimum age", `${op.request.min_age_seconds} s`],
                [isCapture ? "Flows matched" : "Flows flushed", String(op.flows_matched)],
              ]}
            />
            <h3>Filters</h3>
            <ol class="filters-list">
              {op.request.filters.map((f, i) => <li key={i} class="mono small">{filterText(f)}</li>)}
            </ol>
          </Panel>
          {op.status === "IN_PROGRESS" && (
            <Panel title="Progress">
              <Spinner label={`Scanning: ${op.workers.reduce((a, w) => a + w.scanned, 0).toLocaleString()} flows scanned, ${op.flows_matched} matched`} />
              <table class="table">
                <thead><tr><th scope="col">Worker</th><th scope="col">Scan</th><th scope="col">Scanned</th><th scope="col">Matched</th></tr></thead>
                <tbody>
                  {op.workers.map((w) => <tr key={w.worker}><td>{w.worker}</td><td>{w.scan}</td><td>{w.scanned}</td><td>{w.matched}</td></tr>)}
                </tbody>
              </table>
            </Panel>
          )}
          {settled && (
            <Panel
              title={isCapture ? "Capture results" : "Flushed flows"}
              actions={
                <>
                  <button class="btn" disabled={exporting} onClick={() => exportAs("csv")}>Export CSV</button>
                  <button class="btn" disabled={exporting} onClick={() => exportAs("json")}>Export JSON</button>
                </>
              }
            >
              {!page ? (
                <Spinner label="Loading results…" />
              ) : (
                <>
                  <p class="muted small">{page.results_kept} flows ({page.flows_matched} matched). Sorting applies to this page.</p>
                  <div class="table-wrap">
                    <table class="table" data-testid="results">
                      <thead>
                        <tr>
                          {COLUMNS.map(([k, label]) => (
                            <th scope="col" key={k} aria-sort={sort.key === k ? (sort.asc ? "ascending" : "descending") : "none"}>
                              <button class="sort" onClick={() => setSort({ key: k, asc: sort.key === k ? !sort.asc : true })}>
                                {label}
                                <span aria-hidden="true">{sort.key === k ? (sort.asc ? " ▲" : " ▼") : ""}</span>
                              </button>
                            </th>
                          ))}
                        </tr>
                      </thead>
                      <tbody>
                        {flows.length === 0 && <tr><td colSpan={COLUMNS.length}>No flows matched.</td></tr>}
                        {flows.map((f, i) => (
                          <tr key={i} data-dst-port={f.dst_port}>
                            <td class="mono">{f.src}</td><td>{f.src_port}</td><td class="mono">{f.dst}</td><td>{f.dst_port}</td>
                            <td>{protocolName(f.protocol)}</td><td data-age={f.age_seconds}>{age(f.age_seconds)}</td>
                            <td data-packets={f.packets}>{f.packets.toLocaleString()}</td><td>{f.bytes.toLocaleString()}</td><td>{f.state}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </div>
                  <div class="pager">
                    <button class="btn" disabled={tokens.length < 2} onClick={() => setTokens(tokens.slice(0, -1))}>Previous page</button>
                    <span class="muted small">Page {tokens.length}</span>
                    <button class="btn" disabled={!page.next_token} onClick={() => page.next_token && setTokens([...tokens, page.next_token])}>Next page</button>
                  </div>
                </>
              )}
            </Panel>
          )}
        </>
      )}
    </>
  );
}
