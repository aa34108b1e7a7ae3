// The console served by flowgate-fleet, in a real Chromium against the fleet lab (two
// appliances, zones a and b, each with a real long-lived TCP session to its server on
// SESSION_PORT; scripts/tests/fleet-console-e2e.sh sets it up and starts one capture in
// zone a through the fleet's API): the console asks for the zone first; zone b is picked;
// the charts read zone b's appliance through the fleet; the capture form can only start in
// zone b and its StartFlowCapture carries that zone; a capture of every lab address finds
// zone b's session only; the history shows zone b's operations, or every zone's with a zone
// column; following zone a's operation switches the console to zone a. No request from the
// browser goes anywhere but the fleet.
//
// Env: CONSOLE_URL (the fleet's /console/), ACCESS_KEY_ID, SECRET_ACCESS_KEY, ZONE_A,
//      ZONE_B, ZONE_A_CLIENT_IP, ZONE_B_CLIENT_IP, ZONE_B_SERVER_IP, SESSION_PORT,
//      ZONE_A_OPERATION (the capture started in zone a), SCREENSHOT_DIR, CHROMIUM (optional).
import { env, log, fail, until, openConsole } from "./harness.mjs";

const URL_ = env("CONSOLE_URL");
const AKID = env("ACCESS_KEY_ID");
const SECRET = env("SECRET_ACCESS_KEY");
const ZONE_A = env("ZONE_A");
const ZONE_B = env("ZONE_B");
const A_CLIENT = env("ZONE_A_CLIENT_IP");
const B_CLIENT = env("ZONE_B_CLIENT_IP");
const B_SERVER = env("ZONE_B_SERVER_IP");
const PORT = env("SESSION_PORT");
const A_OPERATION = env("ZONE_A_OPERATION");
const fleetOrigin = new URL(URL_).origin;

// Nothing is refused in this story.
const { page, nav, shot, axe, waitCompleted, checkConsole, finish } = await openConsole(() => false);

/** The "Availability Zone" of the operation page's details. */
const operationZone = () => page.locator(".kv-item", { has: page.locator("dt", { hasText: /^Availability Zone$/ }) }).locator("dd").textContent();

// Every request the page makes, to check where they go and what they carry.
const requests = [];
page.on("request", (r) => requests.push({ url: r.url(), headers: r.headers(), body: r.postData() ?? "" }));

await finish(async () => {
  log("sign in to the fleet's console");
  await page.goto(URL_);
  await page.getByLabel("Access key ID").fill(AKID);
  await page.getByLabel("Secret access key").fill(SECRET);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();

  log("the zone is asked first");
  await page.getByRole("heading", { level: 1, name: "Choose an Availability Zone" }).waitFor();
  const offered = await page.locator("#zone-first option").evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
  if (offered.join(",") !== [ZONE_A, ZONE_B].join(",")) fail(`zones offered: ${offered}`);
  if (requests.some((r) => new URL(r.url).pathname.startsWith("/v1/"))) fail("per-appliance data was read before a zone was chosen");
  await shot("fleet-choose-zone");
  await axe("zone choice");
  await page.locator("#zone-first").selectOption(ZONE_B);
  await page.getByRole("button", { name: "Continue" }).click();

  log("the firewall page, with zone b's statistics through the fleet");
  await page.getByRole("heading", { level: 1, name: "flowgate-lab-fleet" }).waitFor();
  if ((await page.locator("#zone-select").inputValue()) !== ZONE_B) fail("the top bar does not show zone b");
  await until("charts with a few samples", async () => {
    const points = await page.locator(".chart-box").evaluateAll((els) => els.map((e) => Number(e.dataset.points)));
    return points.length === 3 && points.every((n) => n >= 3);
  });
  const stats = requests.filter((r) => new URL(r.url).pathname === "/v1/stats");
  if (!stats.length || stats.some((r) => r.headers["x-flowgate-zone"] !== ZONE_B)) fail(`stats not read from zone b: ${JSON.stringify(stats.map((r) => r.headers["x-flowgate-zone"]))}`);
  await shot("fleet-firewall-zone-b");
  await axe("fleet firewall page");

  log("capture every lab address in zone b: only zone b's session");
  await page.goto(URL_ + "#/operations/new/capture");
  await page.getByRole("heading", { level: 1, name: "Configure flow capture" }).waitFor();
  await until("the form's zone", async () => (await page.locator("#zone").inputValue()) === ZONE_B);
  const formZones = await page.locator("#zone option").evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
  if (formZones.join(",") !== ZONE_B) fail(`the form offers ${formZones}`);
  await page.locator("#f0-source").fill("198.18.0.0/15");
  await page.locator("#f0-destinationPort").fill(PORT);
  await page.getByRole("checkbox", { name: "TCP" }).check();
  await page.getByRole("button", { name: "Start capture" }).click();
  await until("the capture's page", async () => /#\/operations\/[0-9a-f-]{36}$/.test(page.url()));
  const captureId = page.url().split("/").pop();
  const start = requests.find((r) => r.headers["x-amz-target"] === "NetworkFirewall_20201112.StartFlowCapture");
  if (!start || JSON.parse(start.body).AvailabilityZone !== ZONE_B) fail(`StartFlowCapture did not carry zone b: ${start?.body}`);
  await waitCompleted("capture in zone b");
  const rows = page.locator(`[data-testid=results] tbody tr[data-dst-port="${PORT}"]`);
  await rows.first().waitFor();
  const texts = await rows.allTextContents();
  if (!texts.some((t) => t.includes(B_CLIENT) && t.includes(B_SERVER))) fail(`zone b's session not captured: ${texts}`);
  if (texts.some((t) => t.includes(A_CLIENT))) fail(`zone a's session in zone b's capture: ${texts}`);
  await until("the operation's zone shown", async () => (await operationZone()) === ZONE_B);
  await shot("fleet-capture-zone-b");
  await axe("fleet capture results");

  log("history: zone b only, then every zone with a zone column");
  await nav().getByRole("link", { name: "Firewall operations", exact: true }).click();
  await page.getByRole("heading", { level: 1, name: "Firewall operations" }).waitFor();
  await until("zone b's capture listed", async () => (await page.locator(`tr[data-op="${captureId}"]`).count()) === 1);
  if ((await page.locator(`tr[data-op="${A_OPERATION}"]`).count()) !== 0) fail("zone a's operation in zone b's history");
  await page.locator("#opzone").selectOption({ label: "All zones" });
  await until("both zones' operations", async () =>
    (await page.locator(`tr[data-op="${A_OPERATION}"][data-zone="${ZONE_A}"]`).count()) === 1 &&
    (await page.locator(`tr[data-op="${captureId}"][data-zone="${ZONE_B}"]`).count()) === 1);
  await shot("fleet-history-all-zones");
  await axe("fleet history");

  log("zone a's operation from the merged history switches the console to zone a");
  await page.getByRole("link", { name: A_OPERATION }).click();
  await page.getByText("FLOW_CAPTURE").waitFor();
  await until("zone a selected", async () => (await page.locator("#zone-select").inputValue()) === ZONE_A);
  await until("the operation's zone shown", async () => (await operationZone()) === ZONE_A);
  await shot("fleet-operation-zone-a");

  log("every request went to the fleet");
  const elsewhere = requests.filter((r) => !r.url.startsWith(fleetOrigin));
  if (elsewhere.length) fail(`requests to other origins: ${elsewhere.map((r) => r.url)}`);

  log("sign out");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Secret access key").waitFor();
  if (await page.evaluate(() => sessionStorage.length) !== 0) fail("session storage not cleared");

  log("browser console: no errors");
  checkConsole();
  console.log(`fleet-console-e2e: passed (capture ${captureId} in ${ZONE_B}); screenshots in ${process.env.SCREENSHOT_DIR}`);
});
