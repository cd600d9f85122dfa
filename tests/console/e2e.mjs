// The operator console in a real browser: Debian's Chromium, driven by playwright-core.
// tests/it/console.rs starts voltbus on the machine's PostgreSQL, RabbitMQ and NATS, a webhook
// receiver and a poisoned message, then runs this script with what it made in the environment.
// Every page visited is photographed into $SCREENSHOTS (the README names the folder).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("CONSOLE_URL");
const org = env("ORGANISATION");
const shots = env("SCREENSHOTS");
mkdirSync(shots, { recursive: true });

const check = (condition, message) => {
  if (!condition) throw new Error(`check failed: ${message}`);
};
let current = null;
let shot = 0;
const photograph = async (page, name) => {
  shot += 1;
  const file = join(shots, `${String(shot).padStart(2, "0")}-${name}.png`);
  // Chromium refuses a capture now and then while the page changes under it (the live parts
  // redraw): try again, a few times.
  for (let attempt = 1; ; attempt += 1) {
    try {
      await page.screenshot({ path: file, fullPage: true });
      break;
    } catch (error) {
      if (attempt === 3) throw error;
      await page.waitForTimeout(300);
    }
  }
  console.log(`screenshot ${file}`);
};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  current = page;
  page.on("pageerror", (error) => { throw error; });

  // Sign in.
  await page.goto(`${base}/admin`);
  check(page.url().endsWith("/admin/sign-in"), "an anonymous visit is sent to sign in");
  await photograph(page, "sign-in");
  await page.fill("input[name=email]", env("OPERATOR_EMAIL"));
  await page.fill("input[name=password]", env("OPERATOR_PASSWORD"));
  await Promise.all([page.waitForNavigation(), page.click("#sign-in button[type=submit]")]);
  check(page.url().endsWith("/admin/orgs"), `signed in and on the organisations (${page.url()})`);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "voltbus_console");
  check(session && session.httpOnly && session.secure && session.sameSite === "Strict", "the session cookie is HttpOnly, Secure, SameSite=Strict");
  await photograph(page, "organisations");

  // Integrations: the secret is shown once.
  await page.goto(`${base}/admin/orgs/${org}/integrations`);
  await page.fill("form.create input[name=name]", "Fleet app");
  await page.selectOption("form.create select[name=bundle]", "FLEET_MANAGER_ACCESS");
  await Promise.all([page.waitForNavigation(), page.click("form.create button[type=submit]")]);
  const secret = (await page.textContent("#secret-value")).trim();
  check(secret.startsWith("evc_cs_"), `a client secret is shown (${secret.slice(0, 7)}…)`);
  check(await page.isVisible("button[data-copy=secret-value]"), "with a copy button");
  check((await page.textContent("#secret .warning")).includes("shown this once"), "and a warning");
  await photograph(page, "integration-secret");
  await page.click("#done");
  await page.waitForURL(`**/admin/orgs/${org}/integrations`);
  check((await page.textContent("#integrations")).includes("Fleet app"), "the integration is listed");
  check(!(await page.content()).includes(secret), "the secret is not shown again");
  await photograph(page, "integrations");

  // API keys.
  await page.goto(`${base}/admin/orgs/${org}/keys`);
  await page.fill("form.create input[name=name]", "Dispatch");
  await page.check("form.create input[value='vehicles:read']");
  await Promise.all([page.waitForNavigation(), page.click("form.create button[type=submit]")]);
  const key = (await page.textContent("#secret-value")).trim();
  await page.click("#done");
  await page.waitForURL(`**/admin/orgs/${org}/keys`);
  check((await page.textContent("#keys")).includes(key.slice(0, 12)), "the key is listed by its prefix");
  check(!(await page.content()).includes(key), "the key is not shown again");
  await photograph(page, "keys");

  // Webhooks: an endpoint at the test's receiver, a test event, its delivery, a replay.
  await page.goto(`${base}/admin/orgs/${org}/webhooks`);
  await page.fill("form.create input[name=url]", env("RECEIVER_URL"));
  await page.fill("form.create input[name=events]", "*");
  await Promise.all([page.waitForNavigation(), page.click("form.create button[type=submit]")]);
  check((await page.textContent("#secret-value")).trim().startsWith("whsec_"), "the signing secret is shown once");
  await photograph(page, "webhook-secret");
  await Promise.all([page.waitForNavigation(), page.click("#done")]);
  await Promise.all([page.waitForNavigation(), page.click("text=Send test event")]);
  check((await page.textContent(".notice")).includes("Test event queued"), "the test event is queued");
  // The delivery log follows the attempts without a reload.
  await page.waitForFunction(() => document.getElementById("deliveries")?.textContent.includes("succeeded"), null, { timeout: 20_000 });
  check((await page.textContent("#deliveries")).includes("webhook.test"), "the delivery log shows the test event");
  check((await page.textContent("#attempts")).includes("ms"), "each attempt with its latency");
  await photograph(page, "webhook-deliveries");
  await Promise.all([page.waitForNavigation(), page.click("#deliveries button:has-text('Replay')")]);
  check((await page.textContent(".notice")).includes("Replay queued"), "the replay is queued");
  await page.waitForFunction(() => document.querySelectorAll("#attempts tbody tr").length >= 2, null, { timeout: 20_000 });
  await photograph(page, "webhook-replayed");

  // The fleet: the map and one vehicle.
  await page.goto(`${base}/admin/orgs/${org}/vehicles`);
  check(await page.isVisible("svg#map circle.vehicle"), "the map shows the vehicle");
  await photograph(page, "fleet");
  await page.goto(`${base}/admin/orgs/${org}/vehicles/${env("VEHICLE_ID")}`);
  check((await page.textContent("#latest-state")).includes("charge_level"), "the vehicle's latest state");
  check((await page.textContent("#master-data")).includes("C-1"), "its master data");
  await photograph(page, "vehicle");
  // A command: its page follows it, without a reload, until the device answers.
  await page.selectOption("select[name=command]", "honk-and-flash");
  await Promise.all([page.waitForNavigation(), page.click("text=Send command")]);
  check(page.url().includes("/vehicle-commands/"), "the command's page opens");
  await page.waitForFunction(() => document.getElementById("command-status").textContent === "succeeded", null, { timeout: 15_000 });
  await photograph(page, "vehicle-command");

  // Chargers: the one connected over OCPP, reset, and given a new password shown once.
  await page.goto(`${base}/admin/orgs/${org}/chargers`);
  const chargers = await page.textContent("#chargers");
  check(chargers.includes(env("CHARGER_NUMBER")) && chargers.includes("OCPP 1.6"), "the charger and its OCPP version");
  check(chargers.includes("connected to"), "which process holds its socket");
  await photograph(page, "chargers");
  await Promise.all([page.waitForNavigation(), page.click("#chargers button:has-text('Reset')")]);
  check((await page.textContent(".notice")).includes("Reset sent"), "the reset is sent");
  await Promise.all([page.waitForNavigation(), page.click("#chargers button:has-text('New password')")]);
  check((await page.textContent("#secret-value")).length === 40, "the new password, shown once");
  await photograph(page, "charger-password");
  await Promise.all([page.waitForNavigation(), page.click("#done")]);

  // The bus: live figures, then the poisoned message in its dead letters, replayed.
  await page.goto(`${base}/admin/bus`);
  const queues = await page.textContent("#queues");
  const updated = await page.locator("span[data-key=updated]").first().textContent();
  await page.waitForFunction(
    (before) => document.querySelector("span[data-key=updated]").textContent !== before,
    updated,
    { timeout: 10_000 },
  );
  check(queues.includes("integrations"), "the queues are listed");
  await photograph(page, "bus");
  const group = env("DEAD_LETTER_GROUP");
  await page.click(`a[href='/admin/bus/dead-letters/${group}']`);
  await page.waitForURL(`**/admin/bus/dead-letters/${group}`);
  const letters = await page.textContent("#dead-letters");
  check(letters.includes(env("POISON_ID")), "the poisoned message is in the dead letters");
  check(letters.includes("malformed"), "with its reason");
  await photograph(page, "dead-letters");
  const row = page.locator("#dead-letters tbody tr", { hasText: env("POISON_ID") });
  await Promise.all([page.waitForNavigation(), row.locator("button:has-text('Replay')").click()]);
  check((await page.textContent(".notice")).includes("replayed"), "the dead letter is replayed");
  await photograph(page, "dead-letters-replayed");

  // A phone-sized screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/admin/orgs/${org}/webhooks`);
  await photograph(page, "phone-webhooks");

  // Signing out ends the session.
  await Promise.all([page.waitForNavigation(), page.click("header .sign-out button")]);
  await page.goto(`${base}/admin/orgs/${org}/keys`);
  check(page.url().endsWith("/admin/sign-in"), "after signing out, pages need a sign-in again");
  console.log("console e2e: all checks passed");
} catch (error) {
  // What the browser showed when a check failed: the test prints it.
  if (current) {
    console.error(`at ${current.url()}:\n${(await current.textContent("body").catch(() => "")).slice(0, 2000)}`);
    await current.screenshot({ path: join(shots, "failed.png"), fullPage: true }).catch(() => {});
  }
  throw error;
} finally {
  await browser.close();
}
