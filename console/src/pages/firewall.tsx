/** Firewall: identity, zones and sync state, the policy with the stream exception policy up front, live charts. */
import type { PageProps } from "../app";
import { Chart } from "../chart";
import { streamExceptionEffect } from "../form";
import type { Series } from "../series";
import { Alert, KeyValues, Panel, Spinner, Status } from "../ui";

export function FirewallPage({ firewall: fw, series, reloadFirewall }: PageProps & { series: Series; tick: number }) {
  return (
    <>
      <div class="page-head">
        <div>
          <nav aria-label="Breadcrumb" class="crumbs">Firewalls / {fw?.name ?? "…"}</nav>
          <h1 tabIndex={-1}>{fw?.name ?? "Firewall"}</h1>
        </div>
        <div class="page-actions">
          <button class="btn" onClick={reloadFirewall}>Refresh</button>
          <a class="btn" href="#/operations/new/capture">Configure flow capture</a>
          <a class="btn btn-primary" href="#/operations/new/flush">Configure flow flush</a>
        </div>
      </div>
      {!fw ? (
        <Spinner label="Loading the firewall…" />
      ) : (
        <>
          <section class={`sep sep-${fw.streamExceptionPolicy.toLowerCase()}`} aria-labelledby="sep-title">
            <h2 id="sep-title">
              Stream exception policy: <span class="sep-value" data-testid="stream-exception-policy">{fw.streamExceptionPolicy}</span>
            </h2>
            <p>What happens to flushed flows and other midstream traffic: {streamExceptionEffect(fw.streamExceptionPolicy)}</p>
          </section>
          {fw.lastReloadError && (
            <Alert kind="warning" title="The policy files are invalid; the appliance runs the last validated policy">{fw.lastReloadError}</Alert>
          )}
          <Panel title="Firewall details">
            <KeyValues
              items={[
                ["Name", fw.name],
                ["ARN", <code class="break">{fw.arn || "—"}</code>],
                ["Status", <Status value={fw.status} />],
                ["Availability Zones", fw.zones.join(", ")],
                ["Firewall policy", fw.policyName || (fw.policyEpoch !== undefined ? `epoch ${fw.policyEpoch}` : "—")],
                ["Rule order", fw.ruleOrder],
              ]}
            />
          </Panel>
          <div class="grid-2">
            <Panel title="Sync state">
              <table class="table">
                <thead>
                  <tr><th scope="col">Availability Zone</th><th scope="col">Configuration sync</th></tr>
                </thead>
                <tbody>
                  {Object.entries(fw.syncStates).map(([z, s]) => (
                    <tr key={z}><td>{z}</td><td><Status value={s} /></td></tr>
                  ))}
                </tbody>
              </table>
            </Panel>
            <Panel title="Stateful rule groups" actions={<a href="#/policy">View policy</a>}>
              <table class="table">
                <thead>
                  <tr><th scope="col">Name</th><th scope="col">Priority</th><th scope="col">Rules</th></tr>
                </thead>
                <tbody>
                  {fw.ruleGroups.length === 0 && <tr><td colSpan={3}>No rule groups</td></tr>}
                  {fw.ruleGroups.map((g) => (
                    <tr key={g.name}><td>{g.name}</td><td>{g.priority ?? "—"}</td><td>{g.rules}</td></tr>
                  ))}
                </tbody>
              </table>
            </Panel>
          </div>
        </>
      )}
      <Panel title="Monitoring (last minutes, refreshed every 2 s)">
        <p class="muted small">A flush raises midstream traffic for a while: the flushed connections' next packets meet the stream exception policy.</p>
        <div class="charts">
          <Chart title="Packets per second" unit="" t={series.t} lines={[{ label: "received", color: "#0972d3", values: series.packetsPerSec }]} />
          <Chart title="Active flows" unit="" t={series.t} lines={[{ label: "flows", color: "#037f0c", values: series.activeFlows }]} />
          <Chart
            title="Midstream packets per second by outcome"
            unit=""
            t={series.t}
            lines={[
              { label: "rejected", color: "#d91515", values: series.midRejected },
              { label: "dropped", color: "#8d6605", values: series.midDropped },
              { label: "continued", color: "#7d8998", values: series.midContinued },
            ]}
          />
        </div>
      </Panel>
    </>
  );
}
