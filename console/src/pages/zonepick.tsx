/**
 * A fleet's console asks for the Availability Zone first (as the AWS console does): every
 * operation, statistic and chart is of one zone's appliance. The zone can be changed later
 * in the top bar.
 */
import { useState } from "preact/hooks";
import type { ConsoleConfig } from "../api";

export function ZonePicker({ config, onPick, onSignOut }: { config: ConsoleConfig; onPick: (zone: string) => void; onSignOut: () => void }) {
  const [zone, setZone] = useState("");
  const [error, setError] = useState("");
  const submit = (e: Event) => {
    e.preventDefault();
    if (!config.zones.includes(zone)) {
      setError("Choose the Availability Zone to work in.");
      return;
    }
    onPick(zone);
  };
  return (
    <main class="signin-wrap">
      <form class="signin" onSubmit={submit} noValidate>
        <h1 tabIndex={-1}>Choose an Availability Zone</h1>
        <p class="muted">
          This firewall spans {config.zones.length} Availability Zones. Flow operations, statistics and charts are
          per zone; the operation history can also show every zone.
        </p>
        <label for="zone-first">Availability Zone</label>
        <select
          id="zone-first"
          value={zone}
          onChange={(e) => setZone(e.currentTarget.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? "zone-first-error" : undefined}
        >
          <option value="">Choose a zone</option>
          {config.zones.map((z) => <option key={z} value={z}>{z}</option>)}
        </select>
        {error && <p class="field-error" id="zone-first-error">{error}</p>}
        <button class="btn btn-primary" type="submit">Continue</button>
        <button class="btn" type="button" onClick={onSignOut}>Sign out</button>
      </form>
    </main>
  );
}
