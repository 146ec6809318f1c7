// The dashboard in a real browser (Debian's Chromium driven by playwright-core)
// against a real devenvd and devenv built from this workspace: the cases of issue 13.
// Run by scripts/test-dashboard-browser.sh (scripts/test.sh); needs the binaries
// built and /usr/bin/chromium.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, freePorts, repoRoot, until, World } from "./harness.mjs";

const CHATTY_LINES = 60_000;
const CHATTY = `import os, sys, time
run = os.getpid()
# Numbered lines, 10,000 a second (a pace the page keeps up with, so the daemon drops
# none for it), then quiet: enough to overflow the page's buffer.
out = sys.stdout
for i in range(${String(CHATTY_LINES)}):
    out.write(f"chatty pid-{run} line {i:06d}\\n")
    if i % 500 == 499:
        out.flush()
        time.sleep(0.05)
out.flush()
while True:
    time.sleep(3600)
`;

// One line of each kind the daemon reads a level from (a prefix, JSON, logfmt,
// brackets), and lines with none.
const LEVELED = `import time
for line in [
    "INFO app started",
    '{"level":"warn","msg":"cache cold"}',
    "DEBUG details",
    "ERROR disk gone",
    'level=error msg="second error"',
    "INFORMATION is no level",
    "[warn] low memory",
]:
    print(line, flush=True)
while True:
    time.sleep(3600)
`;
const WARN_AND_UP = ['{"level":"warn","msg":"cache cold"}', "ERROR disk gone", 'level=error msg="second error"', "[warn] low memory"];

/** A plain HTTP request to the dashboard port with chosen headers. */
function http(port, { method = "GET", path = "/", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}

/** The data-state values a service's row goes through, recorded in the page as they happen. */
async function recordStates(page, service) {
  await page.evaluate((name) => {
    const w = window;
    w.__states = w.__states ?? {};
    const seen = (w.__states[name] = []);
    const row = document.querySelector(`tr[data-service="${name}"]`);
    if (!row) throw new Error(`no row for ${name}`);
    seen.push(row.dataset.state);
    new MutationObserver(() => {
      const s = row.dataset.state;
      if (seen[seen.length - 1] !== s) seen.push(s);
    }).observe(row, { attributes: true, attributeFilter: ["data-state"] });
  }, service);
  return () => page.evaluate((name) => window.__states[name], service);
}

function isSubsequence(want, got) {
  let i = 0;
  for (const g of got) if (g === want[i]) i++;
  return i === want.length;
}

describe("dashboard in Chromium", { concurrency: false, timeout: 600_000 }, () => {
  let world;
  let browser;
  let page;
  let dash;
  let quickstart;
  let chatty;
  let leveled;
  let qsEnv;

  before(async () => {
    world = new World();
    const [db, api, web] = await freePorts(3);
    qsEnv = { QUICKSTART_DB_PORT: String(db), QUICKSTART_API_PORT: String(api), QUICKSTART_WEB_PORT: String(web) };
    quickstart = world.project("quickstart", { example: "quickstart" });
    chatty = world.project("chatty", {
      files: {
        ".devenv/config.yml": "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: chatty\nspec:\n  services:\n    - name: chatty\n      command: [python3, -u, chatty.py]\n",
        "chatty.py": CHATTY,
      },
    });
    leveled = world.project("leveled", {
      files: {
        ".devenv/config.yml": "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: leveled\nspec:\n  services:\n    - name: app\n      command: [python3, -u, app.py]\n",
        "app.py": LEVELED,
      },
    });
    await world.startDaemon(0);
    dash = await world.dashboard();
    browser = await chromium.launch({ executablePath: CHROMIUM });
  });

  after(async () => {
    await browser?.close();
    if (world?.daemon) {
      for (const dir of [quickstart, chatty, leveled]) await world.devenv(["down"], { cwd: dir, check: false });
    }
    await world?.close();
  });

  test("requests without the token, with a foreign Host or a foreign Origin are refused", async () => {
    const port = dash.port;
    const host = { Host: `127.0.0.1:${String(port)}` };
    const noCookie = await http(port, { path: "/", headers: host });
    assert.equal(noCookie.status, 401, "GET / without the session cookie");
    assert.equal(noCookie.body.length, 0, "a refused request learns nothing");
    const badToken = await http(port, { path: "/auth?token=wrong", headers: host });
    assert.equal(badToken.status, 401, "a wrong token");
    const token = new URL(dash.url).searchParams.get("token");
    const auth = await http(port, { path: `/auth?token=${token}`, headers: host });
    assert.equal(auth.status, 303);
    const cookie = String(auth.headers["set-cookie"]).split(";")[0];
    assert.match(String(auth.headers["set-cookie"]), /HttpOnly/i);
    assert.match(String(auth.headers["set-cookie"]), /SameSite=Strict/i);
    const ok = await http(port, { path: "/", headers: { ...host, Cookie: cookie } });
    assert.equal(ok.status, 200, "GET / with the cookie");
    const rebinding = await http(port, { path: "/", headers: { Host: `evil.example:${String(port)}`, Cookie: cookie } });
    assert.equal(rebinding.status, 403, "a foreign Host header (DNS rebinding)");
    const health = await http(port, { path: "/healthz", headers: { Host: `evil.example:${String(port)}` } });
    assert.equal(health.status, 403, "health too checks Host");
    // A gRPC-web call (EnvironmentService.List, empty request) from a foreign origin.
    const frame = Buffer.from([0, 0, 0, 0, 0]);
    const grpc = { ...host, Cookie: cookie, "Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1" };
    const foreign = await http(port, { method: "POST", path: "/devenv.v1.EnvironmentService/List", headers: { ...grpc, Origin: "http://evil.example" }, body: frame });
    assert.equal(foreign.status, 403, "a foreign Origin on a gRPC-web call");
    const same = await http(port, { method: "POST", path: "/devenv.v1.EnvironmentService/List", headers: { ...grpc, Origin: `http://127.0.0.1:${String(port)}` }, body: frame });
    assert.equal(same.status, 200, "the same call from the page's origin");

    // And in the browser: a context that never opened the token URL gets nothing.
    const stranger = await browser.newContext();
    const p = await stranger.newPage();
    // Chromium reports an empty 401 as a failed navigation; the response still comes.
    const response = p.waitForEvent("response");
    await p.goto(`http://127.0.0.1:${String(port)}/`).catch(() => null);
    assert.equal((await response).status(), 401);
    assert.equal(await p.locator("header").count(), 0, "no page without the session");
    await stranger.close();
  });

  test("open through the token URL; a three-service example becomes ready", async () => {
    const up = world.devenv(["up"], { cwd: quickstart, env: qsEnv });
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e));
    await page.goto(dash.url);
    assert.equal(new URL(page.url()).pathname, "/", "the token URL redirects to the page");
    assert.equal(new URL(page.url()).search, "", "the token leaves the address bar");
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "devenv_session");
    assert.ok(session, "the session cookie is set");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    await (await up);
    for (const name of ["db", "api", "web"]) {
      await page.locator(`tr[data-service="${name}"][data-state="ready"]`).waitFor({ timeout: 30_000 });
    }
    assert.equal(await page.locator("tbody tr[data-service]").count(), 3);
    await page.locator(".conn-connected").waitFor();
    // Ports are links to the local URL.
    const href = await page.locator(`tr[data-service="web"] td.ports a`).first().getAttribute("href");
    assert.equal(href, `http://127.0.0.1:${qsEnv.QUICKSTART_WEB_PORT}/`);
    // Each service's URL through devenvd's local router is a link; the browser resolves
    // *.localhost to loopback, so clicking it opens the service through the router.
    const headers = await page.locator("table.services thead th").allTextContents();
    const cells = await page.locator('tr[data-service="web"] td').evaluateAll((tds) => tds.map((td) => td.className));
    assert.equal(cells.indexOf("url"), headers.indexOf("url"), `the url column under its header: ${headers.join("|")}`);
    const urlLink = page.locator(`tr[data-service="web"] td.url a`);
    const routed = await urlLink.getAttribute("href");
    assert.match(routed ?? "", /^http:\/\/web\.quickstart\.localhost:\d+\/$/);
    assert.match(await urlLink.textContent(), /^web\.quickstart\.localhost:\d+$/);
    const [tab] = await Promise.all([context.waitForEvent("page"), urlLink.click()]);
    await tab.waitForLoadState();
    assert.equal(tab.url(), routed);
    assert.equal(await tab.title(), "devenv quickstart", "the router reached web's page");
    await tab.close();
    // The graph: web depends on api, api on db.
    await page.locator('[data-tab="graph"]').click();
    await page.locator('.graph g.node[data-service="web"][data-state="ready"]').waitFor();
    assert.equal(await page.locator(".graph path.edge").count(), 2, "two dependency edges");
    await page.locator('[data-tab="services"]').click();
    // Logs of all three arrive.
    await page.locator(".log-row .log-svc", { hasText: "api" }).first().waitFor();
    mkdirSync(join(repoRoot, "docs/img"), { recursive: true });
    await page.screenshot({ path: join(repoRoot, "docs/img/dashboard.png") });
    assert.deepEqual(errors, [], "no script errors in the page");
  });

  test("restart a service by clicking: stopping -> starting -> ready", async () => {
    const states = await recordStates(page, "api");
    await page.locator('tr[data-service="api"] button[data-action="restart"]').click();
    await until("api to go stopping -> starting -> ready", async () => isSubsequence(["stopping", "starting", "ready"], await states()), 30_000);
    assert.equal(await page.locator('tr[data-service="api"] td.num').first().textContent(), "1", "restarts counted");
    await page.locator(".activity-entry", { hasText: "restart api" }).locator(".badge.ok").waitFor();
  });

  test("stop and start a service by clicking: its dependents wait, then come back", async () => {
    // Local services cannot enter dev mode: no button offers it.
    assert.equal(await page.locator('tr[data-service="db"] button[data-action="dev"]').isHidden(), true, "no Dev on for a local service");
    assert.equal(await page.locator('tr[data-service="db"] button[data-action="start"]').isHidden(), true, "a running service offers Stop, not Start");
    await page.locator('tr[data-service="db"] button[data-action="stop"]').click();
    await page.locator('tr[data-service="db"][data-state="stopped"]').waitFor({ timeout: 30_000 });
    for (const name of ["api", "web"]) {
      await page.locator(`tr[data-service="${name}"][data-state="pending"]`).waitFor({ timeout: 30_000 });
      assert.equal(await page.locator(`tr[data-service="${name}"] td.message`).textContent(), "waiting for db (stopped by user)");
    }
    assert.equal(await page.locator('tr[data-service="db"] td.message').textContent(), "stopped by user");
    await page.locator(".activity-entry", { hasText: "stop db" }).locator(".badge.ok").waitFor();
    // The CLI sees the same.
    const stopped = JSON.parse((await world.devenv(["status", "--json"], { cwd: quickstart, env: qsEnv })).stdout);
    assert.equal(stopped.services.find((s) => s.name === "db").state, "stopped");

    await page.locator('tr[data-service="db"] button[data-action="start"]').click();
    for (const name of ["db", "api", "web"]) {
      await page.locator(`tr[data-service="${name}"][data-state="ready"]`).waitFor({ timeout: 60_000 });
    }
    await page.locator(".activity-entry", { hasText: "start db" }).locator(".badge.ok").waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('tr[data-service="db"] button[data-action="stop"]').isHidden(), false);
  });

  test("search the logs on the server and find a line evicted from the page's buffer", async () => {
    await world.devenv(["up"], { cwd: chatty });
    await until("the chatty environment in the switcher", async () => (await page.locator(".env-select option", { hasText: "chatty" }).count()) > 0, 30_000);
    const value = await page.locator(".env-select option", { hasText: "chatty" }).getAttribute("value");
    await page.selectOption(".env-select", value);
    await page.locator('tr[data-service="chatty"][data-state="ready"]').waitFor();
    // A second run prints its burst while the page follows: more than the page keeps.
    await world.devenv(["restart", "chatty"], { cwd: chatty });
    const status = JSON.parse((await world.devenv(["status", "--json"], { cwd: chatty })).stdout);
    const pid = `pid-${String(status.services.find((s) => s.name === "chatty").pid)}`;
    const last = `chatty ${pid} line ${String(CHATTY_LINES - 1).padStart(6, "0")}`;
    await until("the second burst's last line in the page", async () => (await page.locator(".log-row .log-text", { hasText: last }).count()) > 0, 60_000);
    const dropped = await page.locator(".log-dropped").textContent();
    const n = Number((/^([\d,]+) older lines/.exec(dropped ?? "")?.[1] ?? "0").replace(/,/g, ""));
    // The page held the first run's last 5,000 lines, then the second run's from its
    // first line on: line 17 of the second run was about the 5,020th line it received,
    // so with more than 5,100 dropped it is gone from the page; only the daemon has it.
    assert.ok(n > 5_100, `the page dropped its oldest lines (note: ${String(dropped)})`);
    const needle = `chatty ${pid} line 000017`;
    await page.fill(".log-filter", needle);
    await page.press(".log-filter", "Enter");
    await page.locator(".log-row .log-text", { hasText: needle }).waitFor({ timeout: 30_000 });
    assert.equal(await page.locator(".log-row .log-text").count(), 1, "exactly the one matching line");
    // Regex search, on the server too.
    await page.fill(".log-filter", `/${pid} line 00001[0-2]$/`);
    await page.press(".log-filter", "Enter");
    await until("three regex matches", async () => (await page.locator(".log-row .log-text").count()) === 3, 30_000);
    await page.fill(".log-filter", "");
    await page.press(".log-filter", "Enter");
    // Back to the quickstart environment for the next test.
    const qs = await page.locator(".env-select option", { hasText: "quickstart" }).getAttribute("value");
    await page.selectOption(".env-select", qs);
    await page.locator('tr[data-service="web"][data-state="ready"]').waitFor();
  });

  test("filter the logs by level on the daemon; lines coloured by their level", async () => {
    await world.devenv(["up"], { cwd: leveled });
    await until("the leveled environment in the switcher", async () => (await page.locator(".env-select option", { hasText: "leveled" }).count()) > 0, 30_000);
    const value = await page.locator(".env-select option", { hasText: "leveled" }).getAttribute("value");
    await page.selectOption(".env-select", value);
    const own = page.locator(".log-row:not(.s-sys):not(.log-note):not(.log-marker) .log-text");
    await until("all seven lines", async () => (await own.count()) === 7, 30_000);
    // Colours from the level the daemon read: errors red (--bad), warnings amber (--warn).
    const color = (text) => page.locator(".log-row .log-text", { hasText: text }).first().evaluate((el) => getComputedStyle(el).color);
    assert.equal(await color("ERROR disk gone"), "rgb(255, 107, 107)");
    assert.equal(await color("second error"), "rgb(255, 107, 107)");
    assert.equal(await color("cache cold"), "rgb(210, 153, 34)");
    assert.equal(await page.locator(".log-row.l-warn", { hasText: "[warn] low memory" }).count(), 1);
    assert.equal(await page.locator(".log-row.l-debug", { hasText: "DEBUG details" }).count(), 1);
    assert.equal(await page.locator(".log-row.l-info", { hasText: "INFO app started" }).count(), 1);
    const plain = page.locator(".log-row", { hasText: "INFORMATION is no level" });
    assert.equal(await plain.getAttribute("class"), "log-row s-out", "no level, no colour");
    // warn+: the daemon sends only warn and above (and its own lines about the service).
    await page.selectOption(".log-level-select", { label: "warn+" });
    await until("only the warn and error lines", async () => JSON.stringify(await own.allTextContents()) === JSON.stringify(WARN_AND_UP), 30_000);
    await page.selectOption(".log-level-select", { label: "error+" });
    await until("only the error lines", async () => JSON.stringify(await own.allTextContents()) === JSON.stringify(["ERROR disk gone", 'level=error msg="second error"']), 30_000);
    await page.selectOption(".log-level-select", { label: "all levels" });
    await until("all seven lines again", async () => (await own.count()) === 7, 30_000);
    // Back to the quickstart environment for the next test.
    const qs = await page.locator(".env-select option", { hasText: "quickstart" }).getAttribute("value");
    await page.selectOption(".env-select", qs);
    await page.locator('tr[data-service="web"][data-state="ready"]').waitFor();
  });

  test("kill the daemon: the page says disconnected, then reconnects and catches up", async () => {
    const before = await world.devenv(["status", "--json"], { cwd: quickstart, env: qsEnv });
    const pids = Object.fromEntries(JSON.parse(before.stdout).services.map((s) => [s.name, s.pid]));
    await world.killDaemon("SIGKILL");
    await page.locator(".banner", { hasText: "Disconnected" }).waitFor({ timeout: 15_000 });
    assert.ok(await page.locator(".conn-disconnected").count(), "the indicator says disconnected");
    await world.startDaemon(dash.port);
    // The daemon brings the environment back (it was up); the page follows on its own.
    await page.locator(".banner").waitFor({ state: "hidden", timeout: 30_000 });
    for (const name of ["db", "api", "web"]) {
      await page.locator(`tr[data-service="${name}"][data-state="ready"]`).waitFor({ timeout: 60_000 });
    }
    const after = await world.devenv(["status", "--json"], { cwd: quickstart, env: qsEnv });
    for (const s of JSON.parse(after.stdout).services) assert.notEqual(s.pid, pids[s.name], `${s.name} runs anew`);
    // Logs caught up: lines written after the restart are shown after the reconnect note.
    await page.locator(".log-row.log-note", { hasText: "reconnected" }).waitFor({ timeout: 30_000 });
    await page.locator(".log-row", { hasText: "recovered after a daemon restart" }).first().waitFor({ timeout: 30_000 });
  });
});
