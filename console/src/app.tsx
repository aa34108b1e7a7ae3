/**
 * The console's shell: sign-in gate, (served by a fleet) the zone chosen first and the zone
 * selector in the top bar, side navigation, the page for the current route, and the
 * background poll of `/v1/stats` that feeds the Firewall page's charts.
 */
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { clearSession, loadConfig, loadSession, saveSession, setAuthFailureHandler, type ConsoleConfig, type Session } from "./api";
import { loadFirewall, type Firewall } from "./model";
import { useRoute } from "./route";
import { SeriesRecorder, type StatsSnapshot } from "./series";
import { native } from "./api";
import { SignIn } from "./pages/signin";
import { FirewallPage } from "./pages/firewall";
import { HistoryPage } from "./pages/history";
import { OperationFormPage } from "./pages/opform";
import { OperationPage } from "./pages/operation";
import { PolicyPage } from "./pages/policy";
import { ZonePicker } from "./pages/zonepick";
import { Alert } from "./ui";
import { inZone, workingZone } from "./zones";

export interface PageProps {
  session: Session;
  config: ConsoleConfig;
  firewall: Firewall | null;
  reloadFirewall: () => void;
}

const NAV: { hash: string; label: string; match: (p: string[]) => boolean }[] = [
  { hash: "#/firewall", label: "Firewall", match: (p) => p[0] === "firewall" || p.length === 0 },
  { hash: "#/operations", label: "Firewall operations", match: (p) => p[0] === "operations" },
  { hash: "#/policy", label: "Firewall policy", match: (p) => p[0] === "policy" },
];

export function App() {
  const [config, setConfig] = useState<ConsoleConfig | null>(null);
  const [configError, setConfigError] = useState("");
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const [expired, setExpired] = useState("");
  const [firewall, setFirewall] = useState<Firewall | null>(null);
  const [fwError, setFwError] = useState("");
  const [menuOpen, setMenuOpen] = useState(false);
  const recorder = useRef(new SeriesRecorder());
  const [tick, setTick] = useState(0);
  const route = useRoute();
  const mainRef = useRef<HTMLElement>(null);

  useEffect(() => {
    loadConfig().then(setConfig, (e: Error) => setConfigError(e.message));
  }, []);

  const signOut = useCallback((why = "") => {
    clearSession();
    setSession(null);
    setFirewall(null);
    recorder.current = new SeriesRecorder();
    setExpired(why);
  }, []);

  useEffect(() => setAuthFailureHandler((e) => loadSession() && signOut(`Signed out: the appliance refused the signed request (${e.type}: ${e.message})`)), [signOut]);

  const reloadFirewall = useCallback(() => {
    if (!session || !config || workingZone(config, session) === null) return;
    loadFirewall(session).then(
      (f) => {
        setFirewall(f);
        setFwError("");
      },
      (e: Error) => setFwError(e.message),
    );
  }, [session, config]);

  useEffect(reloadFirewall, [reloadFirewall]);

  // A fleet's console works in one zone: switching reads another appliance, so the charts
  // start over.
  const selectZone = useCallback(
    (zone: string) => {
      if (!config || !session) return;
      const next = inZone(config, session, zone);
      if (next === session || next.zone === session.zone) return;
      saveSession(next);
      recorder.current = new SeriesRecorder();
      setFirewall(null);
      setSession(next);
    },
    [config, session],
  );

  // A link to an operation of another zone (the all-zones history) switches to that zone.
  const routeZone = route.params.get("zone");
  useEffect(() => {
    if (routeZone) selectZone(routeZone);
  }, [routeZone, selectZone]);

  // Charts: one /v1/stats sample every 2 s while signed in (about 5 minutes are kept).
  useEffect(() => {
    if (!session || (config && workingZone(config, session) === null)) return;
    let stopped = false;
    const poll = async () => {
      try {
        const s = await native<StatsSnapshot>(session, "GET", "/v1/stats");
        if (stopped) return;
        recorder.current.add(s, Date.now() / 1000);
        setTick((t) => t + 1);
      } catch {
        /* shown by the pages' own calls; the next poll retries */
      }
    };
    poll();
    const id = setInterval(poll, 2000);
    return () => {
      stopped = true;
      clearInterval(id);
    };
  }, [session, config]);

  // Move focus to the page's heading on navigation (screen readers and keyboard users).
  useEffect(() => {
    setMenuOpen(false);
    mainRef.current?.querySelector<HTMLElement>("h1")?.focus();
  }, [route.path.join("/")]);

  if (configError) {
    return (
      <main class="signin-wrap">
        <Alert kind="error" title="The console could not load its settings">{configError}</Alert>
      </main>
    );
  }
  if (!config) return null;
  if (!session) {
    return (
      <SignIn
        config={config}
        notice={expired}
        onSignedIn={(s) => {
          setExpired("");
          setSession(s);
        }}
      />
    );
  }

  if (workingZone(config, session) === null) {
    return (
      <ZonePicker
        config={config}
        onPick={(zone) => {
          const next = inZone(config, session, zone);
          saveSession(next);
          setSession(next);
        }}
        onSignOut={() => signOut()}
      />
    );
  }

  // A link into another zone: render once the effect above has switched to it, so the page
  // never reads the operation from the zone it is not in.
  if (routeZone && inZone(config, session, routeZone).zone !== session.zone) return null;

  const props: PageProps = { session, config, firewall, reloadFirewall };
  const [first, second] = route.path;
  let page;
  if (first === "operations" && second === "new") page = <OperationFormPage {...props} kind={route.path[2] === "flush" ? "flush" : "capture"} from={route.params.get("from") ?? ""} />;
  else if (first === "operations" && second) page = <OperationPage {...props} id={second} />;
  else if (first === "operations") page = <HistoryPage {...props} />;
  else if (first === "policy") page = <PolicyPage {...props} />;
  else page = <FirewallPage {...props} series={recorder.current.series} tick={tick} />;

  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); mainRef.current?.querySelector<HTMLElement>("h1")?.focus(); }}>
        Skip to main content
      </a>
      <header class="topbar">
        <button class="menu-button" aria-expanded={menuOpen} aria-controls="sidenav" onClick={() => setMenuOpen(!menuOpen)}>
          <span aria-hidden="true">☰</span>
          <span class="sr-only">Navigation</span>
        </button>
        <a class="brand" href="#/firewall">
          Flowgate <span class="brand-sub">Network Firewall console</span>
        </a>
        <div class="topbar-right">
          {config.fleet && (
            <span class="zone-select">
              <label for="zone-select">Availability Zone</label>
              <select id="zone-select" value={session.zone} onChange={(e) => selectZone(e.currentTarget.value)}>
                {config.zones.map((z) => <option key={z} value={z}>{z}</option>)}
              </select>
            </span>
          )}
          <span class="who" title="Access key id">
            <span class="sr-only">Signed in as </span>
            {session.accessKeyId} · {session.region}
          </span>
          <button class="btn btn-link-light" onClick={() => signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <div class="body">
        <nav id="sidenav" class={`sidenav ${menuOpen ? "open" : ""}`} aria-label="Console">
          <div class="sidenav-title">{firewall?.name ?? "Firewall"}</div>
          <ul>
            {NAV.map((n) => (
              <li key={n.hash}>
                <a href={n.hash} aria-current={n.match(route.path) ? "page" : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" ref={mainRef} class="main">
          {fwError && <Alert kind="error" title="The firewall could not be read">{fwError}</Alert>}
          {page}
        </main>
      </div>
    </div>
  );
}
