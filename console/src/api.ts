/**
 * The console's only way to the appliance: every call is signed with SigV4 exactly as the
 * AWS CLI and flowgatectl sign theirs, so the console can do nothing the API would not let
 * the same key do. AWS actions go to `POST /` (AWS JSON 1.0); the native `/v1/` API is used
 * where it is richer (statistics, policy rules, flow state in results, operation progress).
 * The credentials live in sessionStorage only (gone when the tab closes).
 */
import { sign, type Credentials } from "./sigv4";

const SERVICE = "network-firewall";
const TARGET_PREFIX = "NetworkFirewall_20201112.";
const SESSION_KEY = "flowgate.console.session";

export interface Session extends Credentials {
  region: string;
  /** Served by a fleet: the Availability Zone the console works in (see zones.ts). */
  zone?: string;
}

/** The header naming the zone whose appliance a native call reads, on a fleet. */
export const ZONE_HEADER = "x-flowgate-zone";

/** An error the API answered, with its AWS type (`InvalidRequestException`, …). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    const s = raw ? (JSON.parse(raw) as Session) : null;
    return s && s.accessKeyId && s.secretAccessKey && s.region ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session): void {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
}

export function clearSession(): void {
  sessionStorage.clear();
}

/** Called when the API refuses the signature: the console signs the user out. */
let onAuthFailure: (e: ApiError) => void = () => {};
export function setAuthFailureHandler(f: (e: ApiError) => void): void {
  onAuthFailure = f;
}

const AUTH_ERRORS = new Set([
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "SignatureDoesNotMatch",
  "IncompleteSignatureException",
  "MissingAuthenticationTokenException",
  "AccessDeniedException",
]);

export function isAuthError(e: unknown): boolean {
  return e instanceof ApiError && (e.status === 401 || e.status === 403 || AUTH_ERRORS.has(e.type));
}

async function send(
  session: Session,
  method: string,
  path: string,
  query: string,
  headers: [string, string][],
  body: string,
): Promise<unknown> {
  const bytes = new TextEncoder().encode(body);
  const req = { method, path, query, headers: [...headers], body: bytes };
  await sign(req, location.host, session, session.region, SERVICE, new Date());
  // The browser sets Host itself (to location.host, which is what was signed).
  const wire = new Headers();
  for (const [n, v] of req.headers) if (n !== "host") wire.append(n, v);
  let res: Response;
  try {
    res = await fetch(path + (query ? "?" + query : ""), {
      method,
      headers: wire,
      body: method === "GET" ? undefined : bytes,
      credentials: "omit",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "NetworkError", `The appliance could not be reached: ${(e as Error).message}`);
  }
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    if (!res.ok) throw new ApiError(res.status, "HttpError", `HTTP ${res.status}: ${text.slice(0, 200)}`);
    throw new ApiError(res.status, "SerializationException", "The appliance sent a response that is not JSON.");
  }
  if (!res.ok) {
    const type = String(json.__type ?? json.error ?? `HTTP ${res.status}`).replace(/^.*#/, "");
    const err = new ApiError(res.status, type, String(json.message ?? json.Message ?? text));
    if (isAuthError(err)) onAuthFailure(err);
    throw err;
  }
  return json;
}

/** One AWS JSON 1.0 action. */
export function aws<T = Record<string, unknown>>(session: Session, action: string, members: Record<string, unknown>): Promise<T> {
  return send(
    session,
    "POST",
    "/",
    "",
    [
      ["content-type", "application/x-amz-json-1.0"],
      ["x-amz-target", TARGET_PREFIX + action],
    ],
    JSON.stringify(members),
  ) as Promise<T>;
}

/**
 * A native `/v1/` call; `params` become the (percent-encoded) query. On a fleet it reads
 * `zone`'s appliance (the session's zone unless given): the fleet forwards it, signed with
 * that zone's credentials.
 */
export function native<T = Record<string, unknown>>(
  session: Session,
  method: "GET" | "POST",
  path: string,
  params: Record<string, string | number | undefined> = {},
  body?: unknown,
  zone: string | undefined = session.zone,
): Promise<T> {
  const query = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join("&");
  const headers: [string, string][] = body === undefined ? [] : [["content-type", "application/json"]];
  if (zone) headers.push([ZONE_HEADER, zone]);
  return send(session, method, path, query, headers, body === undefined ? "" : JSON.stringify(body)) as Promise<T>;
}

/** The console's settings the appliance serves without authentication (region, zones). */
export interface ConsoleConfig {
  region: string;
  zones: string[];
  /** Served by flowgate-fleet (several zones' appliances): the console asks for the zone. */
  fleet: boolean;
}

export async function loadConfig(): Promise<ConsoleConfig> {
  const res = await fetch("config.json", { cache: "no-store", credentials: "omit" });
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  const c = (await res.json()) as Partial<ConsoleConfig>;
  return { region: c.region ?? "us-east-1", zones: Array.isArray(c.zones) ? c.zones : [], fleet: c.fleet === true };
}
