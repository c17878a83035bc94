// journey.mjs - the web interface in a real Chromium (Debian's, driven by
// playwright-core), as a person takes it: an administrator signs in and makes
// two users (one with a one-time password), disables and enables one, reads the
// audit log; the first user signs in, creates two projects (each
// with its two connections), open one, add a connection with the driver picker
// and test it and the destination on a worker, share the project with a second
// user and change their role, create a transfer job, schedule it and read its
// next fire times, run it and watch it succeed, run an SQL job and find its log
// line by search, run one that fails and see the unread badge count it, rename and deactivate the project, delete the
// other after its confirmation, create an API token (shown once) and revoke
// it, sign out; then sign in as the second user, a viewer, and find no run
// button, no console, no form and no credential.
//
// Run by tests/system/test_web.py against the test stack's API:
//   node web/test/journey.mjs   with CV_WEB_BASE, CV_WEB_USER, CV_WEB_PASSWORD,
//   CV_WEB_SQLITE (an SQLite file), CV_WEB_PG (an ODBC string), CV_WEB_SHOTS (a folder),
//   CV_WEB_ADMIN and CV_WEB_ADMIN_PASSWORD (an administrator, who makes the users
//   CV_WEB_USER and CV_WEB_MEMBER in the page), CV_WEB_TABLE (a PostgreSQL
//   table the transfer job creates from the SQLite file's `fruit`)
// Fails (exit 1) on any step that does not show what it should, on any console
// error, failed request or answer of 400 and above, and on any serious or
// critical axe-core finding. Screenshots of every page at 1280x800 and 390x844
// go to CV_WEB_SHOTS.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set`);
  return process.env[k];
};
const BASE = env("CV_WEB_BASE");
const SHOTS = env("CV_WEB_SHOTS");
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const SIZES = [
  ["laptop", { width: 1280, height: 800 }],
  ["phone", { width: 390, height: 844 }],
];
const problems = [];
let current = null; // the page, for a screenshot of where a step failed

function watch(page) {
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    // A read cut short by leaving the page (a reload, a run's event stream the page
    // closes when the run ends) reads as aborted; a write never may.
    if (r.method() === "GET" && r.failure()?.errorText === "net::ERR_ABORTED") return;
    problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => r.status() >= 400 && problems.push(`answer ${r.status()}: ${r.request().method()} ${r.url()}`));
}

// Screenshots at both sizes, and axe-core's findings on the page as it stands.
// axe-core's serious and critical findings on the page as it stands, as problems.
async function axe(page, name) {
  await page.evaluate(AXE + ";0"); // evaluated by the driver: the page's CSP allows no inline code
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help,
      first: v.nodes[0] && `${v.nodes[0].target.join(" ")}: ${(v.nodes[0].failureSummary || "").split("\n").slice(-1)[0]}` }));
  });
  for (const v of found)
    if (v.impact === "serious" || v.impact === "critical")
      problems.push(`axe on ${name}: ${v.impact} ${v.id} (${v.nodes} nodes): ${v.help}; first ${v.first}`);
}

// Each page: axe-core in light and in dark colours, screenshots at both sizes (and one in
// dark), and no page wider than the screen.
async function look(page, name) {
  await axe(page, name);
  for (const [size, viewport] of SIZES) {
    await page.setViewportSize(viewport);
    await page.waitForTimeout(200); // what a resize re-renders (the charts)
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > viewport.width) problems.push(`${name} is ${wide} px wide at ${viewport.width} px`);
    await page.screenshot({ path: path.join(SHOTS, `${name}-${size}.png`), fullPage: true });
  }
  await page.setViewportSize(SIZES[0][1]);
  await page.emulateMedia({ colorScheme: "dark" });
  await axe(page, `${name} (dark)`);
  await page.screenshot({ path: path.join(SHOTS, `${name}-dark.png`), fullPage: true });
  await page.emulateMedia({ colorScheme: "light" });
}

async function newProject(page, name) {
  await page.getByText("New project", { exact: true }).click();
  const form = page.getByRole("form", { name: "New project" });
  await form.getByLabel("Name", { exact: true }).fill(name);
  const [origin, dest] = [form.getByRole("group", { name: /Origin/ }), form.getByRole("group", { name: /Destination/ })];
  await origin.getByLabel("Connection name").fill(`${name} origin`);
  await origin.getByLabel("ODBC connection string").fill(`Driver=SQLite3;Database=${env("CV_WEB_SQLITE")}`);
  await dest.getByLabel("Connection name").fill(`${name} destination`);
  await dest.getByLabel("ODBC connection string").fill(env("CV_WEB_PG"));
  await form.getByRole("button", { name: "Create project" }).click();
  await page.getByRole("row", { name: new RegExp(name) }).waitFor();
}

async function main() {
  fs.rmSync(SHOTS, { recursive: true, force: true });
  fs.mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CV_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const context = await browser.newContext({ viewport: SIZES[0][1] });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
    const page = (current = await context.newPage());
    page.setDefaultTimeout(15000);
    watch(page);

    // Into the sign-in form itself: a page that is still going away may have
    // fields of the same names (the administration's "New user").
    const signIn = async (name, password) => {
      const form = page.getByRole("form", { name: "Sign in" });
      await form.waitFor();
      await form.getByLabel("User name").fill(name);
      await form.getByLabel("Password").fill(password);
      await form.getByRole("button", { name: "Sign in" }).click();
      await page.locator(".who", { hasText: name }).waitFor();
    };
    await page.goto(BASE + "/");
    await page.getByRole("form", { name: "Sign in" }).waitFor();
    await look(page, "signin");

    // The administrator makes the two users: one with a password, one with a
    // one-time password the page shows once.
    // Signed in with the keyboard only: the name field has the focus, Tab, Enter.
    await page.keyboard.type(env("CV_WEB_ADMIN"));
    await page.keyboard.press("Tab");
    await page.keyboard.type(env("CV_WEB_ADMIN_PASSWORD"));
    await page.keyboard.press("Enter");
    await page.locator(".who", { hasText: env("CV_WEB_ADMIN") }).waitFor();

    // A long transfer the test started: its page shows a bar and the time left,
    // from the origin's estimate of the rows, and its button cancels it.
    await page.goto(`${BASE}/#/runs/${env("CV_WEB_LONG_RUN")}`);
    await page.getByRole("status").filter({ hasText: /rows read of about [\d,]+, [\d,]+ rows\/s, about [\d,]+ s left/ })
      .waitFor({ timeout: 30000 });
    await page.locator("progress[max='100']").waitFor();
    await look(page, "run-progress");
    await page.getByRole("button", { name: "Cancel the run" }).click();
    await page.locator(".facts strong", { hasText: /^cancelled$/ }).waitFor({ timeout: 30000 });
    await page.getByRole("link", { name: "Administration" }).click();
    const lagRows = page.getByRole("table", { name: "Consumer lag" }).getByRole("row");
    await lagRows.nth(5).waitFor(); // a header and the five groups
    await page.getByRole("table", { name: "Workers" }).getByRole("row").nth(1).waitFor();
    const newUser = page.getByRole("form", { name: "New user" });
    await newUser.getByLabel("User name").fill(env("CV_WEB_USER"));
    await newUser.getByLabel("Display name").fill("Webby Webster");
    await newUser.getByLabel(/^Password/).fill(env("CV_WEB_PASSWORD"));
    await newUser.getByRole("button", { name: "Create user" }).click();
    await page.getByRole("row", { name: new RegExp(`^${env("CV_WEB_USER")} Webby Webster active`) }).waitFor();
    await newUser.getByLabel("User name").fill(env("CV_WEB_MEMBER"));
    await newUser.getByRole("button", { name: "Create user" }).click();
    const once = page.locator(".shown-once code.token");
    await once.waitFor();
    const memberPassword = await once.textContent();
    const mate = page.getByRole("row", { name: new RegExp(`^${env("CV_WEB_MEMBER")} `) });
    await mate.getByRole("button", { name: "Disable" }).click();
    await mate.getByText("disabled", { exact: true }).waitFor();
    await mate.getByRole("button", { name: "Enable" }).click();
    await mate.getByText("active", { exact: true }).waitFor();
    await page.getByRole("row", { name: /POST \/api\/v1\/users 201/ }).first().waitFor();
    await look(page, "admin");
    await page.getByRole("button", { name: "Sign out" }).click();

    await signIn(env("CV_WEB_USER"), env("CV_WEB_PASSWORD"));
    await page.getByRole("heading", { name: "Projects" }).waitFor();
    await page.getByText("No projects yet").waitFor();

    await newProject(page, "web keep");
    await newProject(page, "web drop");
    await look(page, "projects");

    // The project's own page: its connections, jobs and members.
    await page.getByRole("link", { name: "web keep" }).click();
    await page.getByRole("heading", { name: /web keep/ }).waitFor();
    const conns = page.getByRole("region", { name: "Connections" });
    await conns.getByRole("row", { name: /web keep origin/ }).waitFor();
    await page.getByText("Add a connection").click();
    const add = page.getByRole("form", { name: "Add a connection" });
    await add.getByLabel("Name").fill("web extra");
    await add.getByLabel("Driver").selectOption("sqlite");
    await add.getByLabel("Database file on the workers").fill(env("CV_WEB_SQLITE"));
    await add.getByRole("button", { name: "Add connection" }).click();
    const extra = conns.getByRole("row", { name: /web extra/ });
    await extra.getByText(`Driver=SQLite3;Database=${env("CV_WEB_SQLITE")}`).waitFor();
    await extra.getByRole("button", { name: "Test" }).click();
    await extra.getByText(/^works \(\d+ ms\)$/).waitFor();
    const dest = conns.getByRole("row", { name: /web keep destination/ });
    await dest.getByRole("button", { name: "Test" }).click();
    await dest.getByText(/^works \(\d+ ms\)$/).waitFor();
    if ((await dest.textContent()).includes("PWD=convutell")) problems.push("a password is shown");
    await page.getByRole("region", { name: "Jobs" }).getByText("No jobs yet.").waitFor();
    const share = page.getByRole("form", { name: "Share the project" });
    await share.getByLabel("User name").fill(env("CV_WEB_MEMBER"));
    await share.getByLabel("Role").selectOption("runner");
    await share.getByRole("button", { name: "Share" }).click();
    const member = page.getByRole("row", { name: new RegExp(env("CV_WEB_MEMBER")) });
    await member.waitFor();
    await member.getByLabel(`Role of ${env("CV_WEB_MEMBER")}`).selectOption("viewer");
    await page.waitForResponse((r) => r.request().method() === "PATCH" && r.url().includes("/members/"));
    // A webhook: its secret made up and shown once; switched off.
    await page.getByText("Add a webhook").click();
    const hook = page.getByRole("form", { name: "Add a webhook" });
    await hook.getByLabel("URL").fill("http://127.0.0.1:9/convutell-hook");
    await hook.getByRole("button", { name: "Add webhook" }).click();
    const hookSecret = await page.locator(".shown-once code.token").textContent();
    if (!/^whs_/.test(hookSecret)) problems.push(`the webhook's secret reads ${hookSecret}`);
    const hookRow = page.getByRole("row", { name: /convutell-hook run\.failed, run\.timed_out active/ });
    await hookRow.getByRole("button", { name: "Switch off" }).click();
    await page.getByRole("row", { name: /convutell-hook .* inactive/ }).waitFor();
    await look(page, "project");

    // A transfer job, scheduled, run now and watched to its end.
    await page.getByText("New job", { exact: true }).click();
    const nj = page.getByRole("form", { name: "New job" });
    await nj.getByLabel("Name").fill("fruit copy");
    await nj.getByLabel("Query on the origin").fill("SELECT id, name FROM fruit");
    await nj.getByLabel("Destination table").fill(env("CV_WEB_TABLE"));
    await nj.getByLabel("Mode").selectOption("replace");
    await nj.getByRole("button", { name: "Create job" }).click();
    await page.getByRole("heading", { name: "fruit copy" }).waitFor();
    const sf = page.getByRole("form", { name: "Set the schedule" });
    await sf.getByLabel("Cron (5 fields)").fill("0 3 * * *");
    await sf.getByLabel("Time zone").fill("Europe/Zurich");
    const typed = page.getByRole("list", { name: "Fire times as typed" }).getByRole("listitem");
    await typed.nth(4).waitFor(); // shown as typed, before anything is saved
    await sf.getByLabel("Attempts").fill("3");
    await sf.getByLabel("While a run is going").selectOption("forbid");
    await sf.getByRole("button", { name: "Save schedule" }).click();
    const fires = page.getByRole("list", { name: "Next fire times" }).getByRole("listitem");
    await fires.nth(4).waitFor();
    if ((await fires.count()) !== 5) problems.push(`${await fires.count()} fire times shown`);
    // An edit: a transform in Python, in the code editor, saved over the version read.
    await page.getByRole("button", { name: "Edit" }).click();
    const edit = page.getByRole("form", { name: "Edit the job" });
    await edit.getByRole("textbox", { name: "Transform (Python, optional)" }).fill(
      "import json, sys\nfor line in sys.stdin:\n    row = json.loads(line)\n" +
      "    row['name'] = row['name'].upper()\n    print(json.dumps(row))\n");
    await look(page, "job-edit");
    await edit.getByRole("button", { name: "Save the job" }).click();
    await page.getByRole("term").filter({ hasText: "transform" }).waitFor();
    await page.locator("dl.facts dd", { hasText: /^2$/ }).waitFor(); // its version
    await page.locator("dl.facts dd", { hasText: /^replace$/ }).waitFor(); // what was not edited stays
    await look(page, "job");
    await page.getByRole("button", { name: "Run now" }).click();
    await page.getByRole("heading", { name: /^Run / }).waitFor();
    await page.getByText("succeeded", { exact: true }).waitFor({ timeout: 60000 });
    await page.locator("dl.facts dd", { hasText: /^3$/ }).first().waitFor();
    await look(page, "run");
    await page.getByRole("link", { name: "fruit copy" }).click();
    const history = page.getByRole("region", { name: "Runs" });
    await history.getByRole("cell", { name: "succeeded" }).waitFor();
    // A time range: from tomorrow holds no run; cleared, the run is back.
    const tomorrow = new Date(Date.now() + 86400000);
    const local = new Date(tomorrow.getTime() - tomorrow.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    await history.getByLabel("From").fill(local);
    await history.getByText("No runs.").waitFor();
    await history.getByLabel("From").fill("");
    await history.getByRole("cell", { name: "succeeded" }).waitFor();
    await page.getByRole("link", { name: "web keep" }).click();

    // An SQL job on the destination: its log searched; then one that fails.
    const sqlJob = async (name, statements) => {
      await page.getByText("New job", { exact: true }).click();
      const f = page.getByRole("form", { name: "New job" });
      await f.getByLabel("Name").fill(name);
      await f.getByLabel("Kind").selectOption("sql");
      await f.getByRole("textbox", { name: "Statements" }).fill(statements);
      await f.getByRole("button", { name: "Create job" }).click();
      await page.getByRole("heading", { name }).waitFor();
      await page.getByRole("button", { name: "Run now" }).click();
      await page.getByRole("heading", { name: /^Run / }).waitFor();
    };
    const table = env("CV_WEB_TABLE");
    await sqlJob("tidy", `UPDATE ${table} SET name = upper(name) WHERE id > 1; DELETE FROM ${table} WHERE id = 1`);
    await page.getByText("succeeded", { exact: true }).waitFor({ timeout: 60000 });
    const log = page.getByRole("region", { name: "Log" });
    await log.getByLabel("Text to find").fill("STATEMENT 2");
    await log.getByRole("button", { name: "Search" }).click();
    await log.getByText("statement 1: 2 rows").waitFor({ state: "detached" }); // the search's answer
    await log.getByText("statement 2: 1 rows").waitFor();
    await look(page, "run-log");
    await page.getByRole("link", { name: "tidy" }).click();
    await page.getByRole("link", { name: "web keep" }).click();
    await sqlJob("broken", "SELECT * FROM no_such_table_at_all");
    await page.getByText("failed", { exact: true }).waitFor({ timeout: 60000 });
    await page.getByRole("alert").getByText(/no_such_table_at_all/).waitFor();
    // The failure reaches the inbox: the badge counts it (asked again on each page).
    for (let i = 0; ; i++) {
      await page.getByRole("link", { name: "Projects", exact: true }).first().click();
      if (await page.getByLabel("1 unread notifications").count()) break;
      if (i === 40) throw new Error("no unread notification after the failed run");
      await page.waitForTimeout(500);
      await page.getByRole("link", { name: "API tokens" }).click();
    }
    // The list of projects sums each up: the last run failed, one failure today,
    // the next run is the transfer's at 03:00 in Zurich.
    await page.getByRole("row", { name: /^web keep active failed .+ 1 .+ \(fruit copy\)/ }).waitFor();
    await look(page, "projects-summary");

    // The inbox: the failed run, linked; marked read, the badge goes.
    await page.getByRole("link", { name: /^Notifications/ }).click();
    await page.getByRole("heading", { name: "Notifications" }).waitFor();
    await page.getByText(/no_such_table_at_all/).waitFor();
    await look(page, "inbox");
    await page.getByRole("link", { name: /^Run [0-9a-f]{8} failed$/ }).click();
    await page.getByText("failed", { exact: true }).waitFor();
    await page.getByRole("link", { name: /^Notifications/ }).click();
    await page.getByRole("button", { name: "Mark read" }).click();
    await page.getByRole("button", { name: "Mark read" }).waitFor({ state: "detached" });
    await page.getByLabel("1 unread notifications").waitFor({ state: "detached" });
    await page.getByRole("link", { name: "Projects", exact: true }).first().click();

    // The dashboard: the three runs of the day (3 rows copied, 3 changed), as numbers and charts.
    await page.getByRole("link", { name: "web keep" }).click();
    await page.getByText(/^Last 14 days: 3 runs, 2 succeeded, 1 failed; 6 rows written/).waitFor();
    await page.locator("figure.chart canvas").nth(2).waitFor();
    // The owner's audit trail has what the journey changed here.
    await page.getByRole("region", { name: "Audit trail" })
      .getByRole("row", { name: /PATCH \/api\/v1\/webhooks\/\{\} 200/ }).waitFor();
    await look(page, "dashboard");

    // The SQL console: a count on the destination, 10,000 rows in the grid, a
    // CSV download, a cancel, a saved query made into a transfer job.
    await page.getByRole("link", { name: "SQL console" }).click();
    const editor = page.getByRole("textbox", { name: "SQL statement" });
    await editor.waitFor();
    const query = async (text) => {
      await editor.click();
      await page.keyboard.press("Control+A");
      await page.keyboard.press("Delete");
      await editor.fill(text);
      await page.keyboard.press("Control+Enter");
    };
    await page.getByLabel("Run on").selectOption("destination");
    await query(`SELECT count(*) AS n FROM ${table}`);
    await page.getByText(/^1 rows in \d+ ms/).waitFor();
    await page.getByRole("region", { name: "Result rows" }).getByRole("cell", { name: "2", exact: true }).waitFor();
    await page.getByLabel("Max rows").fill("10000");
    await query("SELECT g, 'row ' || g AS label FROM generate_series(1, 12000) g");
    await page.getByText(/^10000 rows in \d+ ms/).waitFor();
    await page.getByText(/truncated: more rows were there/).waitFor();
    const grid = page.getByRole("region", { name: "Result rows" });
    const inPage = await grid.locator("tbody tr:not([aria-hidden])").count();
    if (inPage > 100) problems.push(`the grid put ${inPage} rows in the page at once`);
    await grid.evaluate((el) => (el.scrollTop = el.scrollHeight));
    await grid.getByRole("cell", { name: "row 10000", exact: true }).waitFor();
    const csv = await page.getByRole("link", { name: "Download CSV" }).getAttribute("href");
    const got = await page.request.get(BASE + csv);
    const lines = (await got.text()).trimEnd().split(/\r?\n/); // RFC 4180: CRLF
    if (lines.length !== 10001 || lines[0] !== "g,label" || lines[10000] !== "10000,row 10000")
      problems.push(`the CSV has ${lines.length} lines, first ${lines[0]}, last ${lines[lines.length - 1]}`);
    await look(page, "console");
    await query("SELECT pg_sleep(20)");
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByRole("alert").getByText("cancelled", { exact: true }).waitFor({ timeout: 20000 });
    await query(`SELECT id, name FROM ${table}`);
    await page.getByText(/^2 rows in/).waitFor();
    const saveForm = page.getByRole("form", { name: "Save the query" });
    await saveForm.getByLabel("Name").fill("fruit rows");
    await saveForm.getByRole("button", { name: "Save query" }).click();
    await page.getByRole("button", { name: "Open fruit rows" }).click();
    const toJob = page.getByRole("form", { name: "Make fruit rows a transfer job" });
    await toJob.getByLabel("Destination table for fruit rows").fill(`${table}_again`);
    await toJob.getByRole("button", { name: "Make a transfer job" }).click();
    await page.getByRole("heading", { name: "fruit rows" }).waitFor();
    await page.getByRole("link", { name: "Projects", exact: true }).first().click();

    const keep = page.getByRole("row", { name: /web keep/ });
    await keep.getByRole("button", { name: "Rename" }).click();
    await keep.getByLabel("New name").fill("web kept");
    await keep.getByRole("button", { name: "Save" }).click();
    const kept = page.getByRole("row", { name: /web kept/ });
    await kept.getByRole("button", { name: "Deactivate" }).click();
    await kept.getByText("inactive").waitFor();

    const drop = page.getByRole("row", { name: /web drop/ });
    await drop.getByRole("button", { name: "Delete…" }).click();
    await drop.getByText("Delete web drop and its jobs?").waitFor();
    await look(page, "projects-confirm");
    await drop.getByRole("button", { name: "Delete", exact: true }).click();
    await page.getByRole("row", { name: /web drop/ }).waitFor({ state: "detached" });

    // A reload keeps the session (the cookie) and its CSRF value (asked again).
    await page.reload();
    await page.getByRole("row", { name: /web kept/ }).waitFor();
    await page.getByRole("link", { name: "API tokens" }).click();
    await page.getByRole("heading", { name: "API tokens" }).waitFor();
    const tokenForm = page.getByRole("form", { name: "New token" });
    await tokenForm.getByLabel("Name").fill("web ci");
    await tokenForm.getByLabel("Scope").selectOption("read");
    await tokenForm.getByRole("button", { name: "Create token" }).click();
    const shown = await page.locator("code.token").textContent();
    if (!/^cvt_[A-Za-z0-9_-]{40,}$/.test(shown)) problems.push(`the new token reads ${shown}`);
    await page.getByRole("button", { name: "Copy" }).click();
    await page.getByRole("button", { name: "Copied" }).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    if (copied !== shown) problems.push("the copied token is not the one shown");
    await look(page, "tokens");
    const row = page.getByRole("row", { name: /web ci/ });
    await row.getByRole("button", { name: "Revoke" }).click();
    await row.waitFor({ state: "detached" });

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("form", { name: "Sign in" }).waitFor();
    await page.reload();
    await page.getByRole("form", { name: "Sign in" }).waitFor(); // the session is over

    // The viewer: reads the project, its jobs and runs; no run button, no
    // console, no form to change anything, and no credential in any string.
    await signIn(env("CV_WEB_MEMBER"), memberPassword);
    await page.getByRole("link", { name: "web kept" }).click();
    await page.getByText("Your role: viewer").waitFor();
    await page.getByRole("link", { name: "fruit copy" }).waitFor();
    const main = page.locator("main");
    for (const [role, name] of [["link", "SQL console"], ["button", "Test"], ["group", "Add a connection"], ["group", "New job"]])
      if (await main.getByRole(role, { name, exact: true }).count()) problems.push(`a viewer sees the ${role} "${name}"`);
    if (!(await main.getByRole("group", { name: "Add a connection", exact: true }).count() === 0 &&
          (await page.getByText("Add a connection").count()) === 0)) problems.push("a viewer may add a connection");
    if ((await page.getByRole("form", { name: "Share the project" }).count()) !== 0) problems.push("a viewer may share");
    const strings = await page.locator("code.odbc").allTextContents();
    if (strings.length !== 3 || strings.some((t) => /UID=|PWD=/i.test(t)))
      problems.push(`a viewer reads the connection strings ${JSON.stringify(strings)}`);
    await look(page, "project-viewer");
    await page.getByRole("link", { name: "fruit copy" }).click();
    await page.getByRole("region", { name: "Runs" }).getByRole("cell", { name: "succeeded" }).waitFor();
    if (await page.getByRole("button", { name: "Run now" }).count()) problems.push("a viewer sees Run now");
    if (await page.getByRole("form", { name: "Set the schedule" }).count()) problems.push("a viewer may schedule");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("form", { name: "Sign in" }).waitFor();
    console.log(JSON.stringify({ token: shown }));
  } catch (e) {
    if (current) {
      await current.screenshot({ path: path.join(SHOTS, "failed.png"), fullPage: true }).catch(() => {});
      console.error(await current.locator("body").ariaSnapshot().catch(() => ""));
    }
    throw e;
  } finally {
    await browser.close();
  }
  if (problems.length) {
    console.error(problems.join("\n"));
    process.exit(1);
  }
}

main().catch(async (e) => {
  console.error(e.stack || String(e));
  if (problems.length) console.error(problems.join("\n"));
  process.exit(1);
});
