/**
 * Configure flow capture / flush: Availability Zone, minimum age, 1–20 filters; the API's
 * validation messages beside the field they name; a flush asks for confirmation naming the
 * stream exception policy and what it does to the matched connections.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { PageProps } from "../app";
import { ApiError, aws } from "../api";
import {
  MAX_FILTERS, PROTOCOLS, canAddFilter, emptyFilter, emptyForm, fieldOfApiMessage, fromAwsOperation,
  streamExceptionEffect, toAwsRequest, validate, type FieldErrors, type FilterRow, type OperationForm,
} from "../form";
import { awsFiltersOf, getOperation } from "../model";
import { go } from "../route";
import { formZones } from "../zones";
import { Alert, Panel } from "../ui";

type Kind = "capture" | "flush";

function FieldError({ id, text }: { id: string; text?: string }) {
  return text ? <p class="field-error" id={id}>{text}</p> : null;
}

export function OperationFormPage({ session, config, firewall, kind, from }: PageProps & { kind: Kind; from: string }) {
  const zones = formZones(config, session, firewall?.zones ?? []);
  const [form, setForm] = useState<OperationForm>(() => emptyForm(zones.length === 1 ? zones[0] : ""));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const [prefillNote, setPrefillNote] = useState("");
  const dialog = useRef<HTMLDialogElement>(null);
  const title = kind === "capture" ? "Configure flow capture" : "Configure flow flush";

  useEffect(() => {
    setErrors({});
    if (!from) {
      setForm(emptyForm(zones.length === 1 ? zones[0] : ""));
      setPrefillNote("");
      return;
    }
    getOperation(session, from).then(
      (op) => {
        setForm(fromAwsOperation(op.zone, awsFiltersOf(op)));
        setPrefillNote(`Filters from flow ${op.type} ${op.id}.`);
      },
      (e: Error) => setErrors({ form: `The operation's filters could not be read: ${e.message}` }),
    );
  }, [from, kind]);

  // A zone learnt after the first render (the firewall loads in the background).
  useEffect(() => {
    // On a fleet the form follows the zone chosen in the top bar.
    if (zones.length === 1 && form.zone !== zones[0] && (!form.zone || config.fleet)) setForm({ ...form, zone: zones[0] });
  }, [zones.join(",")]);

  const setFilter = (i: number, f: Partial<FilterRow>) =>
    setForm({ ...form, filters: form.filters.map((x, j) => (j === i ? { ...x, ...f } : x)) });

  const start = async () => {
    dialog.current?.close();
    setBusy(true);
    try {
      if (!firewall?.arn) throw new ApiError(0, "NoFirewall", "The firewall's ARN is not known yet; try again in a moment.");
      const action = kind === "capture" ? "StartFlowCapture" : "StartFlowFlush";
      const r = await aws<{ FlowOperationId: string }>(session, action, { FirewallArn: firewall.arn, ...toAwsRequest(form) });
      go(`#/operations/${r.FlowOperationId}`);
    } catch (e) {
      const err = e as ApiError;
      const field = err instanceof ApiError && err.type === "InvalidRequestException" ? fieldOfApiMessage(err.message) : "form";
      const text = err instanceof ApiError && err.type !== "NoFirewall" ? `${err.message} (${err.type})` : err.message;
      setErrors({ [field]: text, ...(field !== "form" ? { form: "The API refused the request: see the field marked below." } : {}) });
      setBusy(false);
      requestAnimationFrame(() => document.querySelector<HTMLElement>("[aria-invalid=true]")?.focus());
    }
  };

  const submit = (e: Event) => {
    e.preventDefault();
    const v = validate(form);
    setErrors(v);
    if (Object.keys(v).length) {
      requestAnimationFrame(() => document.querySelector<HTMLElement>("[aria-invalid=true]")?.focus());
      return;
    }
    if (kind === "flush") dialog.current?.showModal();
    else start();
  };

  const err = (k: string) => errors[k];
  const inv = (k: string) => (errors[k] ? { "aria-invalid": true as const, "aria-describedby": `${k.replace(/\./g, "-")}-error` } : {});
  const sep = firewall?.streamExceptionPolicy ?? "unknown";

  return (
    <>
      <div class="page-head">
        <div>
          <nav aria-label="Breadcrumb" class="crumbs">Firewalls / Firewall operations / {title}</nav>
          <h1 tabIndex={-1}>{title}</h1>
        </div>
      </div>
      {kind === "flush" && (
        <Alert kind="warning" title={`Stream exception policy: ${sep}`}>
          Flushing removes the matched flows from the flow table. {streamExceptionEffect(sep)} While a flush completes,
          midstream traffic metrics may rise. Double-check the stream exception policy before you flush.
        </Alert>
      )}
      {prefillNote && <Alert kind="info">{prefillNote}</Alert>}
      {errors.form && <Alert kind="error" title="The operation was not started">{errors.form}</Alert>}
      <form onSubmit={submit} noValidate aria-label={title}>
        <Panel title="Scope">
          <div class="field">
            <label for="zone">Availability Zone</label>
            <select id="zone" value={form.zone} onChange={(e) => setForm({ ...form, zone: e.currentTarget.value })} {...inv("zone")}>
              <option value="">Choose a zone</option>
              {zones.map((z) => <option key={z} value={z}>{z}</option>)}
            </select>
            {config.fleet && <p class="hint">The zone chosen at the top of the page: this operation runs on that zone's appliance.</p>}
            <FieldError id="zone-error" text={err("zone")} />
          </div>
          <div class="field">
            <label for="minage">Minimum age of flow (seconds) <span class="muted">optional</span></label>
            <input id="minage" inputMode="numeric" value={form.minAge} placeholder="e.g. 300" onInput={(e) => setForm({ ...form, minAge: e.currentTarget.value })} {...inv("minAge")} />
            <p class="hint">Only flows active at least this long; also hides the reconnect attempts that follow a flush.</p>
            <FieldError id="minAge-error" text={err("minAge")} />
          </div>
        </Panel>
        <Panel title={`Filters (${form.filters.length} of ${MAX_FILTERS})`} id="filters-title">
          <p class="hint">A flow matches when it matches any filter; a filter matches when every field it gives matches (source = the side that opened the flow). Addresses are IPv4 or IPv6 hosts or CIDRs; ports a number or a range such as 1024:65535.</p>
          <FieldError id="filters-error" text={err("filters")} />
          {form.filters.map((f, i) => (
            <fieldset class="filter" key={i} data-testid="filter-row">
              <legend>Filter {i + 1}</legend>
              <div class="filter-grid">
                {(
                  [
                    ["source", "Source address", "198.18.0.1/32"],
                    ["destination", "Destination address", "198.18.0.2/32"],
                    ["sourcePort", "Source port", "ANY"],
                    ["destinationPort", "Destination port", "ANY"],
                  ] as [keyof FilterRow, string, string][]
                ).map(([k, label, ph]) => {
                  const key = `filters.${i}.${k}`;
                  return (
                    <div class="field" key={k}>
                      <label for={`f${i}-${k}`}>{label}</label>
                      <input id={`f${i}-${k}`} value={f[k] as string} placeholder={ph} onInput={(e) => setFilter(i, { [k]: e.currentTarget.value })} {...inv(key)} />
                      <FieldError id={`${key.replace(/\./g, "-")}-error`} text={err(key)} />
                    </div>
                  );
                })}
              </div>
              <fieldset class="protocols" aria-describedby={err(`filters.${i}.protocols`) ? `filters-${i}-protocols-error` : undefined}>
                <legend>Protocols <span class="muted">(none = any)</span></legend>
                {PROTOCOLS.map((p) => (
                  <label class="check" key={p.number}>
                    <input
                      type="checkbox"
                      checked={f.protocols.includes(p.number)}
                      onChange={(e) =>
                        setFilter(i, { protocols: e.currentTarget.checked ? [...f.protocols, p.number] : f.protocols.filter((x) => x !== p.number) })
                      }
                    />
                    {p.name}
                  </label>
                ))}
                <FieldError id={`filters-${i}-protocols-error`} text={err(`filters.${i}.protocols`)} />
              </fieldset>
              <button type="button" class="btn btn-small" disabled={form.filters.length === 1} onClick={() => setForm({ ...form, filters: form.filters.filter((_, j) => j !== i) })}>
                Remove filter {i + 1}
              </button>
            </fieldset>
          ))}
          <button
            type="button"
            class="btn"
            disabled={!canAddFilter(form)}
            aria-describedby="add-filter-hint"
            onClick={() => canAddFilter(form) && setForm({ ...form, filters: [...form.filters, emptyFilter()] })}
          >
            Add filter
          </button>
          <span id="add-filter-hint" class="hint inline">You can add up to {MAX_FILTERS} filters.</span>
        </Panel>
        <div class="form-actions">
          <a class="btn" href="#/operations">Cancel</a>
          <button class="btn btn-primary" type="submit" disabled={busy}>
            {busy ? "Starting…" : kind === "capture" ? "Start capture" : "Start flush"}
          </button>
        </div>
      </form>
      <dialog ref={dialog} class="dialog" aria-labelledby="confirm-title" aria-describedby="confirm-body">
        <h2 id="confirm-title">Flush the matched flows?</h2>
        <div id="confirm-body">
          <p>
            The stream exception policy of this firewall is <strong data-testid="confirm-sep">{sep}</strong>. {streamExceptionEffect(sep)}
          </p>
          <p>{form.filters.length} filter{form.filters.length === 1 ? "" : "s"} in {form.zone || "—"}. This cannot be undone.</p>
        </div>
        <div class="form-actions">
          <button class="btn" type="button" onClick={() => dialog.current?.close()}>Cancel</button>
          <button class="btn btn-danger" type="button" onClick={start}>Flush flows</button>
        </div>
      </dialog>
    </>
  );
}
