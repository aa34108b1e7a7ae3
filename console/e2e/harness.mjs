// What the console's end-to-end stories share (console-e2e.mjs against one appliance,
// fleet-console-e2e.mjs against flowgate-fleet): Debian's Chromium driven by playwright-core
// (no browser download) with the lab's CA trusted through $CHROMIUM_HOME's NSS database,
// named steps whose failure says which step, deadline-bound polling, screenshots to
// $SCREENSHOT_DIR, axe-core checks, and the browser console watched for errors and for
// refused requests the story did not provoke.
import { chromium } from "playwright-core";
import { mkdtempSync, readFileSync, rmSync, mkdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";

export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const STEP_TIMEOUT = 30_000;
const NAME = process.argv[1]?.split("/").pop()?.replace(/\.mjs$/, "") ?? "console-e2e";

let step = "start";
/** Starts the step named `s` (failures name it). */
export const log = (s) => {
  step = s;
  console.log(`${NAME}: ${s}`);
};
class StepFailed extends Error {}
export const fail = (why) => {
  throw new StepFailed(`${step}: ${why}`);
};

/** Polls `f` until it returns a truthy value or the deadline passes. */
export async function until(what, f, timeout = STEP_TIMEOUT) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      if (e instanceof StepFailed) throw e;
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  fail(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/**
 * Chromium on a fresh profile at 1280×800. `expectedRefusal(r)` says whether an answer
 * with status ≥ 400 (`{status, url, target, type, at}`, `at` the step it came in) is one
 * the story provokes; [`checkConsole`] fails on any other, and on any browser-console error.
 */
export async function openConsole(expectedRefusal) {
  const shots = env("SCREENSHOT_DIR");
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  const require = createRequire(import.meta.url);
  const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
  mkdirSync(shots, { recursive: true });
  if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath} (apt-get install chromium)`);
  const profile = mkdtempSync(join(tmpdir(), "fg-console-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 800 },
    // The lab's CA is trusted through CHROMIUM_HOME's NSS database (the calling script);
    // a certificate that does not verify fails the test.
    ignoreHTTPSErrors: false,
    env: { ...process.env, HOME: process.env.CHROMIUM_HOME ?? process.env.HOME },
    acceptDownloads: true,
  });
  ctx.setDefaultTimeout(STEP_TIMEOUT);
  const page = ctx.pages()[0] ?? (await ctx.newPage());

  // Browser-console errors. Chromium logs every 4xx answer as "Failed to load resource";
  // each must be a refusal the story expects. Anything else fails.
  const consoleErrors = [];
  const refusals = [];
  const FAILED_LOAD = /^Failed to load resource: the server responded with a status of 4\d\d/;
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
  page.on("response", async (r) => {
    if (r.status() < 400) return;
    const at = step;
    const target = r.request().headers()["x-amz-target"] ?? "";
    let type = "";
    try {
      type = (await r.json()).__type ?? "";
    } catch {}
    refusals.push({ status: r.status(), url: r.url(), target, type, at });
  });

  const h = {
    page,
    ctx,
    refusals,
    nav: () => page.locator("#sidenav"),
    async shot(name) {
      await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    },
    async axe(name) {
      await page.evaluate(axeSource + "\n;void 0");
      const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
      const bad = r.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
      if (bad.length) {
        fail(`axe-core (${name}): ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`).join("; ")}`);
      }
      console.log(`${NAME}:   axe ${name}: ${r.violations.length} minor/moderate, 0 serious`);
    },
    /** Waits for the operation page's status to reach COMPLETED (fails on FAILED). */
    async waitCompleted(what) {
      await until(`${what} COMPLETED`, async () => {
        const s = (await page.locator("[data-testid=op-status]").textContent()) ?? "";
        if (/FAILED|WITH ERRORS/.test(s)) fail(`${what} ended ${s}`);
        return s.includes("COMPLETED");
      });
    },
    checkConsole() {
      const unexpected = refusals.filter((r) => !expectedRefusal(r));
      if (unexpected.length) fail(`unexpected refusals: ${JSON.stringify(unexpected)}`);
      const loads = consoleErrors.filter((e) => FAILED_LOAD.test(e));
      const others = consoleErrors.filter((e) => !FAILED_LOAD.test(e));
      if (others.length) fail(`browser console errors: ${others.join(" | ")}`);
      if (loads.length > refusals.length) fail(`failed loads not explained by expected refusals: ${loads.join(" | ")}`);
    },
    /** Runs the story; a failure is reported with a screenshot and sets the exit code. */
    async finish(story) {
      try {
        await story();
      } catch (e) {
        await h.shot("failure").catch(() => {});
        console.error(`${NAME}: FAILED: ${e.message}`);
        if (consoleErrors.length) console.error(`browser console errors: ${consoleErrors.join(" | ")}`);
        process.exitCode = 1;
      } finally {
        await ctx.close();
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
  return h;
}
