// The browser signer against AWS's SigV4 test suite (the same copies the Rust verifier is
// tested with, mgmt/tests/fixtures) and against requests botocore signed.
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { canonicalRequest, sign, stringToSign, type SignableRequest } from "../src/sigv4";

const FIXTURES = join(__dirname, "../../mgmt/tests/fixtures");
const SUITE = join(FIXTURES, "aws-sig-v4-test-suite");
const CREDS = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const SUITE_TIME = new Date(Date.UTC(2015, 7, 30, 12, 36, 0));

interface Vector { name: string; req: SignableRequest; creq: string; sts: string; authz: string }

function reqFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? reqFiles(p) : p.endsWith(".req") ? [p] : [];
  });
}

function vectors(): Vector[] {
  return reqFiles(SUITE).map((file) => {
    const read = (ext: string) => readFileSync(file.replace(/\.req$/, "." + ext), "utf8");
    const raw = read("req");
    const split = raw.indexOf("\n\n");
    const [head, body] = split < 0 ? [raw, ""] : [raw.slice(0, split), raw.slice(split + 2)];
    const [requestLine, ...headerLines] = head.split("\n");
    const sp = requestLine.indexOf(" ");
    const method = requestLine.slice(0, sp);
    const target = requestLine.slice(sp + 1, requestLine.lastIndexOf(" "));
    const q = target.indexOf("?");
    const [path, query] = q < 0 ? [target, ""] : [target.slice(0, q), target.slice(q + 1)];
    const headers = headerLines.map((l) => {
      const i = l.indexOf(":");
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()] as [string, string];
    });
    return {
      name: file.slice(SUITE.length + 1),
      req: { method, path, query, headers, body: new TextEncoder().encode(body) },
      creq: read("creq"),
      sts: read("sts"),
      authz: read("authz"),
    };
  });
}

const signedHeadersOf = (authz: string) => authz.split("SignedHeaders=")[1].split(",")[0];

describe("SigV4 test suite", () => {
  const all = vectors();
  it("has the suite's vectors", () => expect(all.length).toBeGreaterThanOrEqual(25));

  for (const v of all) {
    it(`${v.name}: canonical request, string to sign`, async () => {
      const { sha256Hex } = await import("../src/sigv4");
      const creq = canonicalRequest(v.req, signedHeadersOf(v.authz), await sha256Hex(v.req.body));
      expect(creq).toBe(v.creq);
      expect(await stringToSign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", creq)).toBe(v.sts);
    });
    it(`${v.name}: Authorization header`, async () => {
      const req = { ...v.req, headers: v.req.headers.filter(([n]) => n !== "x-amz-date") };
      await sign(req, "example.amazonaws.com", CREDS, "us-east-1", "service", SUITE_TIME);
      expect(req.headers.find(([n]) => n === "authorization")?.[1]).toBe(v.authz);
    });
  }
});

describe("requests signed by botocore", () => {
  const fx = JSON.parse(readFileSync(join(FIXTURES, "botocore_sigv4.json"), "utf8"));
  for (const r of fx.requests) {
    it(r.name, async () => {
      const headers: [string, string][] = r.headers
        .filter(([n]: [string, string]) => !["authorization", "x-amz-date"].includes(n.toLowerCase()))
        .map(([n, v]: [string, string]) => [n.toLowerCase(), v]);
      const req: SignableRequest = { method: r.method, path: r.path, query: r.query, headers, body: new TextEncoder().encode(r.body) };
      const host = headers.find(([n]) => n === "host")![1];
      await sign(req, host, { accessKeyId: fx.access_key_id, secretAccessKey: fx.secret_access_key },
        r.region, r.service, new Date(fx.signed_at_unix * 1000));
      const expected = r.headers.find(([n]: [string, string]) => n.toLowerCase() === "authorization")[1];
      expect(req.headers.find(([n]) => n === "authorization")?.[1]).toBe(expected);
    });
  }
});
