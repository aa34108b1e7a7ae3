/**
 * AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for the console's API calls, computed in the
 * browser with WebCrypto. The canonical request follows the same rules as the appliance's
 * verifier (mgmt/src/sigv4.rs): path normalised and URI-encoded once more as sent, query
 * decoded, re-encoded and sorted, header values trimmed with inner spaces collapsed.
 * Checked against AWS's SigV4 test suite (test/sigv4.test.ts).
 */

export const ALGORITHM = "AWS4-HMAC-SHA256";
/** Headers a signer leaves out: hop-by-hop or rewritten by the browser. */
const UNSIGNED = new Set(["authorization", "connection", "content-length", "expect", "transfer-encoding", "user-agent"]);

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** One request to sign; `headers` keep their order and may repeat a name. */
export interface SignableRequest {
  method: string;
  /** The path as it goes on the wire (already percent-encoded where needed). */
  path: string;
  /** The query without `?`, as it goes on the wire. */
  query: string;
  headers: [string, string][];
  body: Uint8Array;
}

const enc = new TextEncoder();

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) {
    throw new Error("This browser offers no WebCrypto here: open the console over HTTPS (or on localhost) to sign requests.");
  }
  return s;
}

export function hex(bytes: ArrayBuffer | Uint8Array): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = "";
  for (const x of b) out += x.toString(16).padStart(2, "0");
  return out;
}

export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  return hex(await subtle().digest("SHA-256", bytes as BufferSource));
}

async function hmac(key: Uint8Array, message: string): Promise<Uint8Array> {
  const k = await subtle().importKey("raw", key as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle().sign("HMAC", k, enc.encode(message)));
}

/** RFC 3986 unreserved bytes stay; every other byte becomes `%XX` (uppercase). */
function uriEncodeBytes(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** `%XX` → byte and `+` → space; a `%` without two hex digits stays literal. */
function percentDecode(s: string): Uint8Array {
  const bytes = enc.encode(s);
  const out: number[] = [];
  const hexv = (b: number | undefined) => {
    if (b === undefined) return -1;
    const c = String.fromCharCode(b);
    return /[0-9a-fA-F]/.test(c) ? parseInt(c, 16) : -1;
  };
  for (let i = 0; i < bytes.length; ) {
    const h = hexv(bytes[i + 1]);
    const l = hexv(bytes[i + 2]);
    if (bytes[i] === 0x25 && h >= 0 && l >= 0) {
      out.push((h << 4) | l);
      i += 3;
    } else {
      out.push(bytes[i] === 0x2b ? 0x20 : bytes[i]);
      i += 1;
    }
  }
  return new Uint8Array(out);
}

/** The canonical URI: dot segments removed, empty segments collapsed, then URI-encoded. */
export function canonicalUri(path: string): string {
  const segments: string[] = [];
  for (const s of path.split("/")) {
    if (s === "" || s === ".") continue;
    if (s === "..") segments.pop();
    else segments.push(s);
  }
  let normalized = "/" + segments.join("/");
  if (path.endsWith("/") && segments.length > 0) normalized += "/";
  return normalized
    .split("/")
    .map((seg) => uriEncodeBytes(enc.encode(seg)))
    .join("/");
}

/** The canonical query: pairs decoded, re-encoded, sorted by key then value. */
export function canonicalQuery(query: string): string {
  const pairs = query
    .split("&")
    .filter((p) => p !== "")
    .map((p) => {
      const i = p.indexOf("=");
      const [k, v] = i < 0 ? [p, ""] : [p.slice(0, i), p.slice(i + 1)];
      return [uriEncodeBytes(percentDecode(k)), uriEncodeBytes(percentDecode(v))] as [string, string];
    });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

function trimCollapse(v: string): string {
  return v.trim().replace(/ +/g, " ");
}

export function canonicalRequest(req: SignableRequest, signedHeaders: string, payloadHash: string): string {
  const lines = [req.method, canonicalUri(req.path), canonicalQuery(req.query)];
  for (const name of signedHeaders.split(";")) {
    const values = req.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => trimCollapse(v));
    lines.push(`${name}:${values.join(",")}`);
  }
  lines.push("", signedHeaders, payloadHash);
  return lines.join("\n");
}

export async function stringToSign(timestamp: string, scope: string, creq: string): Promise<string> {
  return `${ALGORITHM}\n${timestamp}\n${scope}\n${await sha256Hex(creq)}`;
}

export async function signingKey(secret: string, day: string, region: string, service: string): Promise<Uint8Array> {
  const kDate = await hmac(enc.encode("AWS4" + secret), day);
  const kRegion = await hmac(kDate, region);
  const kService = await hmac(kRegion, service);
  return hmac(kService, "aws4_request");
}

/** `YYYYMMDDTHHMMSSZ`. */
export function amzTimestamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/**
 * Signs `req` in place: adds `x-amz-date` and `authorization` (and `host` when missing).
 * Every header present (except the unsigned ones) is signed.
 */
export async function sign(
  req: SignableRequest,
  host: string,
  creds: Credentials,
  region: string,
  service: string,
  now: Date,
): Promise<void> {
  const timestamp = amzTimestamp(now);
  const day = timestamp.slice(0, 8);
  const payloadHash = await sha256Hex(req.body);
  req.headers = req.headers.filter(([n]) => !["authorization", "x-amz-date"].includes(n.toLowerCase()));
  if (!req.headers.some(([n]) => n.toLowerCase() === "host")) req.headers.push(["host", host]);
  req.headers.push(["x-amz-date", timestamp]);
  const names = [...new Set(req.headers.map(([n]) => n.toLowerCase()).filter((n) => !UNSIGNED.has(n)))].sort();
  const signedHeaders = names.join(";");
  const scope = `${day}/${region}/${service}/aws4_request`;
  const creq = canonicalRequest(req, signedHeaders, payloadHash);
  const sts = await stringToSign(timestamp, scope, creq);
  const signature = hex(await hmac(await signingKey(creds.secretAccessKey, day, region, service), sts));
  req.headers.push([
    "authorization",
    `${ALGORITHM} Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  ]);
}
