/** The firewall policy in force: engine options, rule groups and every stateful rule (read-only). */
import { useEffect, useMemo, useState } from "preact/hooks";
import type { PageProps } from "../app";
import { streamExceptionEffect } from "../form";
import { loadPolicy, type Policy } from "../model";
import { Alert, KeyValues, Panel, Spinner } from "../ui";

export function PolicyPage({ session }: PageProps) {
  const [policy, setPolicy] = useState<Policy | null>(null);
  const [error, setError] = useState("");
  const [group, setGroup] = useState("");

  useEffect(() => {
    loadPolicy(session).then(setPolicy, (e: Error) => setError(e.message));
  }, [session]);

  const rules = useMemo(() => (policy?.rules ?? []).filter((r) => !group || r.group === group), [policy, group]);

  return (
    <>
      <div class="page-head">
        <div>
          <nav aria-label="Breadcrumb" class="crumbs">Firewalls / Firewall policy</nav>
          <h1 tabIndex={-1}>Firewall policy</h1>
        </div>
      </div>
      {error && <Alert kind="error" title="The policy could not be read">{error}</Alert>}
      {!policy ? (
        !error && <Spinner label="Loading the policy…" />
      ) : (
        <>
          <section class={`sep sep-${policy.streamExceptionPolicy.toLowerCase()}`} aria-labelledby="psep">
            <h2 id="psep">Stream exception policy: <span class="sep-value">{policy.streamExceptionPolicy}</span></h2>
            <p>{streamExceptionEffect(policy.streamExceptionPolicy)}</p>
          </section>
          {policy.lastReloadError && <Alert kind="warning" title="Last reload refused">{policy.lastReloadError}</Alert>}
          <Panel title="Stateful engine options">
            <KeyValues
              items={[
                ["Policy epoch", String(policy.epoch)],
                ["Rule order", policy.ruleOrder],
                ["TCP idle timeout", policy.tcpIdleTimeoutSeconds ? `${policy.tcpIdleTimeoutSeconds} s` : "default"],
                ["Stateful rules", String(policy.rules.length)],
              ]}
            />
            <p class="muted small">{policy.summary}</p>
          </Panel>
          <Panel title="Stateful rule groups">
            <table class="table">
              <thead><tr><th scope="col">Name</th><th scope="col">Priority</th><th scope="col">Rules</th></tr></thead>
              <tbody>
                {policy.groups.map((g) => (
                  <tr key={g.name}><td>{g.name}</td><td>{g.priority ?? "—"}</td><td>{g.rules}</td></tr>
                ))}
              </tbody>
            </table>
          </Panel>
          <Panel
            title="Rules"
            actions={
              <>
                <label class="inline" for="rgroup">Rule group</label>
                <select id="rgroup" value={group} onChange={(e) => setGroup(e.currentTarget.value)}>
                  <option value="">All</option>
                  {[...new Set(policy.rules.map((r) => r.group))].map((g) => <option key={g} value={g}>{g}</option>)}
                </select>
              </>
            }
          >
            <div class="table-wrap">
              <table class="table" data-testid="rules">
                <thead>
                  <tr><th scope="col">SID</th><th scope="col">Rev</th><th scope="col">Action</th><th scope="col">Rule group</th><th scope="col">Message</th><th scope="col">Hits</th></tr>
                </thead>
                <tbody>
                  {rules.length === 0 && <tr><td colSpan={6}>No rules</td></tr>}
                  {rules.map((r) => (
                    <tr key={`${r.group}-${r.sid}`}>
                      <td class="mono">{r.sid}</td><td>{r.rev}</td><td><span class={`action action-${r.action}`}>{r.action}</span></td>
                      <td>{r.group}</td><td>{r.msg}</td><td>{r.hits ?? "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </Panel>
        </>
      )}
    </>
  );
}
