// The console story in a real Chromium (Debian's package, driven by playwright-core; no
// browser download) against the real appliance in the namespace lab, with a real
// long-lived TCP session from fg-client to fg-server:7001 (scripts/tests/console-e2e.sh
// sets it up). Fails with a message naming the step. Screenshots go to $SCREENSHOT_DIR.
//
// Env: CONSOLE_URL, ACCESS_KEY_ID, SECRET_ACCESS_KEY, CLIENT_IP, SERVER_IP, SESSION_PORT,
//      CLIENT_STATUS (the echo client's status file), SCREENSHOT_DIR, CHROMIUM (optional).
import { readFileSync, existsSync } from "node:fs";
import { env, log, fail, until, openConsole } from "./harness.mjs";

const URL_ = env("CONSOLE_URL");
const AKID = env("ACCESS_KEY_ID");
const SECRET = env("SECRET_ACCESS_KEY");
const CLIENT_IP = env("CLIENT_IP");
const SERVER_IP = env("SERVER_IP");
const PORT = env("SESSION_PORT");
const CLIENT_STATUS = env("CLIENT_STATUS");

// Each 4xx must be one of the refusals this test provokes (a wrong secret, an invalid
// CIDR) or the console's probe for DescribeFirewall on an appliance without it.
const { page, nav, shot, axe, waitCompleted, checkConsole, refusals, finish } = await openConsole((r) =>
  (r.type === "InvalidSignatureException" && r.at.startsWith("a wrong secret")) ||
  (r.type === "InvalidRequestException" && r.at.includes("invalid CIDR")) ||
  (r.type === "UnknownOperationException" && /DescribeFirewall$/.test(r.target)));

await finish(async () => {
  log("headers: CSP, nosniff, content types, cache");
  const assetRes = page.waitForResponse((r) => /\/console\/assets\/[^/]+\.js$/.test(r.url()));
  const res = await page.goto(URL_);
  const h = res.headers();
  const a = (await assetRes).headers();
  if (!/javascript/.test(a["content-type"] ?? "")) fail(`script content type ${a["content-type"]}`);
  if (!/immutable/.test(a["cache-control"] ?? "")) fail(`hashed assets not cached as immutable: ${a["cache-control"]}`);
  if (h["cache-control"] !== "no-cache" || !h["etag"]) fail(`index.html must be revalidated: ${h["cache-control"]} ${h["etag"]}`);
  if (res.status() !== 200) fail(`GET ${URL_} answered ${res.status()}`);
  if (!/script-src 'self'/.test(h["content-security-policy"] ?? "")) fail(`no strict CSP: ${h["content-security-policy"]}`);
  if (h["x-content-type-options"] !== "nosniff") fail("no nosniff");
  if (!/^text\/html/.test(h["content-type"])) fail(`index content type ${h["content-type"]}`);

  log("keyboard: the first Tab reaches the sign-in form");
  await page.getByLabel("Access key ID").waitFor();
  await axe("sign-in");

  log("a wrong secret is refused with a clear error");
  await page.getByLabel("Access key ID").fill(AKID);
  await page.getByLabel("Secret access key").fill(SECRET + "-wrong");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByText("Sign-in failed").waitFor();
  const msg = await page.locator("#signin-error").textContent();
  if (!/secret access key is not the one configured/.test(msg)) fail(`unclear error: ${msg}`);
  if (await page.evaluate(() => sessionStorage.length) !== 0) fail("something was stored after a refused sign-in");
  await shot("sign-in-refused");

  log("sign in");
  await page.getByLabel("Secret access key").fill(SECRET);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { level: 1, name: "flowgate-lab" }).waitFor();
  const sep = await page.locator("[data-testid=stream-exception-policy]").textContent();
  if (sep !== "REJECT") fail(`stream exception policy shown as ${sep}`);
  await page.getByText("arn:aws:network-firewall:").waitFor();
  await until("charts with a few samples", async () => {
    const points = await page.locator(".chart-box").evaluateAll((els) => els.map((e) => Number(e.dataset.points)));
    return points.length === 3 && points.every((n) => n >= 4);
  });
  const labels = await page.locator(".chart-box").evaluateAll((els) => els.map((e) => e.getAttribute("aria-label")));
  if (!/packets per second.*received [0-9]/i.test(labels[0])) fail(`packets/s chart: ${labels[0]}`);
  await shot("firewall");
  await axe("firewall");

  log("keyboard: skip link first, then the navigation");
  await page.keyboard.press("Tab");
  const first = await page.evaluate(() => document.activeElement?.textContent?.trim());
  if (first !== "Skip to main content") fail(`first Tab stop is '${first}'`);

  log("policy page: rules read-only");
  await nav().getByRole("link", { name: "Firewall policy", exact: true }).click();
  await page.getByRole("heading", { level: 1, name: "Firewall policy" }).waitFor();
  await until("rules listed", async () => (await page.locator("[data-testid=rules] tbody tr").count()) >= 1);
  await shot("policy");
  await axe("policy");

  log("capture form: 21 filters cannot be submitted");
  await page.goto(URL_ + "#/operations/new/capture");
  await page.getByRole("heading", { level: 1, name: "Configure flow capture" }).waitFor();
  const add = page.getByRole("button", { name: "Add filter" });
  for (let i = 1; i < 20; i++) await add.click();
  if ((await page.locator("[data-testid=filter-row]").count()) !== 20) fail("20 filters were not added");
  if (!(await add.isDisabled())) fail("Add filter is still enabled with 20 filters");
  await page.getByRole("button", { name: "Add filter" }).click({ force: true, trial: false }).catch(() => {});
  if ((await page.locator("[data-testid=filter-row]").count()) !== 20) fail("a 21st filter was added");
  await shot("capture-20-filters");

  log("capture form: an invalid CIDR shows the API's message next to the field");
  // Leave the form for a page that renders, so the new form starts fresh: two hash
  // changes in a row may reach the app as one render of the same form (seen under load).
  await page.goto(URL_ + "#/operations");
  await page.getByRole("heading", { level: 1, name: "Firewall operations" }).waitFor();
  await page.goto(URL_ + "#/operations/new/capture");
  await page.getByRole("heading", { level: 1, name: "Configure flow capture" }).waitFor();
  await until("a single filter row", async () => (await page.locator("[data-testid=filter-row]").count()) === 1);
  await until("the zone", async () => (await page.getByLabel("Availability Zone").inputValue()) === "lab-zone-a");
  await page.locator("#f0-source").fill(`${CLIENT_IP}/24`);
  await page.getByRole("button", { name: "Start capture" }).click();
  const cidrErr = page.locator("#filters-0-source-error");
  await cidrErr.waitFor();
  const cidrText = await cidrErr.textContent();
  if (!cidrText.includes(`FlowFilters[0].SourceAddress.AddressDefinition: '${CLIENT_IP}/24'`)) fail(`not the API's message: ${cidrText}`);
  if ((await page.locator("#f0-source").getAttribute("aria-invalid")) !== "true") fail("the field is not marked invalid");
  await shot("capture-invalid-cidr");
  await axe("capture form with an error");

  log("capture the long-lived session by addresses and port");
  await page.locator("#f0-source").fill(`${CLIENT_IP}/32`);
  await page.locator("#f0-destination").fill(`${SERVER_IP}/32`);
  await page.locator("#f0-destinationPort").fill(PORT);
  await page.getByRole("checkbox", { name: "TCP" }).check();
  await page.getByRole("button", { name: "Start capture" }).click();
  await until("the capture's page", async () => /#\/operations\/[0-9a-f-]{36}$/.test(page.url()));
  const captureId = page.url().split("/").pop();
  await waitCompleted("capture");
  const row = page.locator(`[data-testid=results] tbody tr[data-dst-port="${PORT}"]`);
  await row.first().waitFor();
  const packets = Number(await row.first().locator("[data-packets]").getAttribute("data-packets"));
  const ageS = Number(await row.first().locator("[data-age]").getAttribute("data-age"));
  if (!(packets > 0)) fail(`captured flow has ${packets} packets`);
  if (!(ageS >= 0)) fail(`captured flow has no age`);
  const text = await row.first().textContent();
  if (!text.includes(CLIENT_IP) || !text.includes(SERVER_IP) || !text.includes("TCP") || !text.includes("ESTABLISHED")) fail(`row: ${text}`);
  log(`  captured: ${text.replace(/\s+/g, " ")} (${packets} packets, ${ageS} s)`);
  // Sorting by a column changes aria-sort.
  await page.getByRole("button", { name: "Age", exact: true }).click();
  if ((await page.locator("th", { has: page.getByRole("button", { name: "Age", exact: true }) }).getAttribute("aria-sort")) !== "ascending") fail("sort by age");
  const [csv] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
  const csvText = readFileSync(await csv.path(), "utf8");
  if (!csvText.startsWith("source,source_port,destination") || !csvText.includes(`,${PORT},TCP,`)) fail(`CSV: ${csvText}`);
  const [js] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export JSON" }).click()]);
  const exported = JSON.parse(readFileSync(await js.path(), "utf8"));
  if (exported.operation_id !== captureId || !exported.flows.some((f) => String(f.dst_port) === PORT)) fail("JSON export");
  await shot("capture-results");
  await axe("capture results");

  log("flush from the results, same filters, after the confirmation names the stream exception policy");
  await page.getByRole("link", { name: "Configure flow flush" }).click();
  await page.getByRole("heading", { level: 1, name: "Configure flow flush" }).waitFor();
  await until("pre-filled filters", async () => (await page.locator("#f0-destinationPort").inputValue()) === PORT);
  if ((await page.locator("#f0-source").inputValue()) !== `${CLIENT_IP}/32`) fail("source not pre-filled");
  if (!(await page.getByRole("checkbox", { name: "TCP" }).isChecked())) fail("protocol not pre-filled");
  await page.getByRole("button", { name: "Start flush" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  const dtext = await dialog.textContent();
  if (!dtext.includes("REJECT") || !/reset/.test(dtext)) fail(`confirmation does not name the policy and its effect: ${dtext}`);
  await shot("flush-confirmation");
  await dialog.getByRole("button", { name: "Flush flows" }).click();
  await until("the flush's page", async () => /#\/operations\/[0-9a-f-]{36}$/.test(page.url()) && !page.url().endsWith(captureId));
  const flushId = page.url().split("/").pop();
  await waitCompleted("flush");
  await page.locator(`[data-testid=results] tbody tr[data-dst-port="${PORT}"]`).first().waitFor();
  await shot("flush-results");

  log("the real client in fg-client sees its connection reset");
  const status = await until("the client's connection reset", async () => {
    const s = existsSync(CLIENT_STATUS) ? readFileSync(CLIENT_STATUS, "utf8") : "";
    return /connection reset/.test(s) && s.trim();
  });
  log(`  client: ${status}`);

  log("history shows both operations COMPLETED");
  await nav().getByRole("link", { name: "Firewall operations", exact: true }).click();
  await page.getByRole("heading", { level: 1, name: "Firewall operations" }).waitFor();
  for (const [id, type] of [[captureId, "capture"], [flushId, "flush"]]) {
    await until(`${type} ${id} in the history`, async () => {
      const r = page.locator(`tr[data-op="${id}"]`);
      return (await r.count()) === 1 && (await r.getAttribute("data-status")) === "COMPLETED" && (await r.getAttribute("data-type")) === type;
    });
  }
  await shot("history");
  await axe("history");
  await page.getByRole("link", { name: flushId }).click();
  await page.getByText("FLOW_FLUSH").waitFor();
  await shot("operation-detail");

  log("narrow window: navigation behind the menu button");
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(URL_ + "#/firewall");
  await page.getByRole("heading", { level: 1, name: "flowgate-lab" }).waitFor();
  const menu = page.getByRole("button", { name: "Navigation", exact: true });
  await menu.click();
  await nav().getByRole("link", { name: "Firewall operations", exact: true }).click();
  await page.getByRole("heading", { level: 1, name: "Firewall operations" }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  if (overflow > 0) fail(`the page scrolls sideways by ${overflow}px at 390px`);
  await shot("narrow-history");
  await page.setViewportSize({ width: 1280, height: 800 });

  log("sign out: the secret is gone");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Secret access key").waitFor();
  if (await page.evaluate(() => sessionStorage.length) !== 0) fail("session storage not cleared");

  log("browser console: no errors beyond the provoked refusals");
  checkConsole();
  if (!refusals.some((r) => r.type === "InvalidSignatureException")) fail("the wrong secret was never refused by the API");
  console.log(`console-e2e: passed (capture ${captureId}, flush ${flushId}); screenshots in ${process.env.SCREENSHOT_DIR}`);
});
