/** Sign-in: an access key id and secret from the appliance's `[[mgmt.keys]]`, checked by one signed call. */
import { useState } from "preact/hooks";
import { ApiError, aws, native, saveSession, type ConsoleConfig, type Session } from "../api";
import { Alert } from "../ui";

function explain(e: unknown): string {
  if (!(e instanceof ApiError)) return (e as Error).message;
  switch (e.type) {
    case "InvalidSignatureException":
      return `The secret access key is not the one configured for this access key id. (${e.type}: ${e.message})`;
    case "UnrecognizedClientException":
      return `This access key id is not configured on the appliance. (${e.type}: ${e.message})`;
    default:
      return `${e.type}: ${e.message}`;
  }
}

export function SignIn({ config, notice, onSignedIn }: { config: ConsoleConfig; notice: string; onSignedIn: (s: Session) => void }) {
  const [keyId, setKeyId] = useState("");
  const [secret, setSecret] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError("");
    const s: Session = { accessKeyId: keyId.trim(), secretAccessKey: secret, region: config.region };
    if (!s.accessKeyId || !s.secretAccessKey) {
      setError("Enter both the access key id and the secret access key.");
      return;
    }
    setBusy(true);
    try {
      // A fleet answers ListFirewalls itself; its /v1/ reads need a zone, chosen next.
      if (config.fleet) await aws(s, "ListFirewalls", {});
      else await native(s, "GET", "/v1/stats");
      saveSession(s);
      onSignedIn(s);
    } catch (err) {
      setError(explain(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin-wrap">
      <form class="signin" onSubmit={submit} aria-describedby={error ? "signin-error" : undefined} noValidate>
        <h1>Sign in to Flowgate</h1>
        <p class="muted">Use an access key from the appliance's <code>[[mgmt.keys]]</code>. Requests are signed in this browser (SigV4); the secret stays in this tab's session storage and is never sent.</p>
        {notice && <Alert kind="info">{notice}</Alert>}
        <label for="akid">Access key ID</label>
        <input id="akid" name="username" autocomplete="username" value={keyId} onInput={(e) => setKeyId(e.currentTarget.value)} required />
        <label for="secret">Secret access key</label>
        <input id="secret" name="password" type="password" autocomplete="current-password" value={secret} onInput={(e) => setSecret(e.currentTarget.value)} required />
        <p class="muted small">Region: {config.region}</p>
        {error && (
          <div id="signin-error">
            <Alert kind="error" title="Sign-in failed">{error}</Alert>
          </div>
        )}
        <button class="btn btn-primary" type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
