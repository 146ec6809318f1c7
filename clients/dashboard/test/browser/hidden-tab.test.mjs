// A hidden tab gives its connections back and catches up when shown again (issue 13):
// after HIDDEN_SUSPEND_MS (10 s, src/main.ts) hidden, the page closes its Watch and log
// streams; shown again, it reopens them and shows what it missed meanwhile: a state
// change (a service stopped while it was hidden) and the log lines printed meanwhile,
// resumed after the last position it held, none twice and none missing.
//
// How the tab is hidden: headless Chromium keeps every page visible. Tried on Chromium
// 156: Browser.setWindowBounds {windowState: "minimized"}, a second tab brought to the
// front (Page.bringToFront, Target.activateTarget in the same window) and
// Page.setWebLifecycleState "frozen" (freezes timers, fires no visibilitychange); CDP
// has no visibility override. So the test does what the browser does when a tab goes to
// the background: document.visibilityState/hidden read "hidden" and a visibilitychange
// event is dispatched on the document, the page's own listener and timers then run as
// they would. The streams' closing and reopening are observed on the network (the
// gRPC-web requests), not in the page's variables.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { CHROMIUM, until, World } from "./harness.mjs";

const SUSPEND_MS = 10_000; // HIDDEN_SUSPEND_MS in src/main.ts

// Numbered lines, 10 a second, so the daemon has about 100 new ones while the tab sleeps.
const TICKER = `import time
i = 0
while True:
    i += 1
    print(f"tick {i:06d}", flush=True)
    time.sleep(0.1)
`;

const CONFIG = `apiVersion: devenv/v1
kind: Environment
metadata:
  name: hidden
spec:
  services:
    - name: ticker
      command: [python3, -u, ticker.py]
    - name: idle
      command: [sleep, "1000000"]
`;

const STREAMS = ["/devenv.v1.EnvironmentService/Watch", "/devenv.v1.LogService/Stream"];

/** Makes the page's document hidden or visible, as a tab going to the background does. */
function setHidden(page, hidden) {
  return page.evaluate((h) => {
    for (const [prop, value] of [["hidden", h], ["visibilityState", h ? "hidden" : "visible"]]) {
      Object.defineProperty(document, prop, { configurable: true, get: () => value });
    }
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

/** The tick numbers of the page's log buffer, as its Download button saves it. */
async function downloadedTicks(page) {
  const [download] = await Promise.all([page.waitForEvent("download"), page.locator("button", { hasText: "Download" }).click()]);
  const text = readFileSync(await download.path(), "utf8");
  return text.split("\n").flatMap((l) => {
    const m = / ticker stdout tick (\d+)$/.exec(l);
    return m ? [Number(m[1])] : [];
  });
}

/** The newest tick the daemon holds. */
async function daemonTick(world, project) {
  const r = await world.devenv(["logs", "ticker", "--tail", "1"], { cwd: project });
  return Number(/tick (\d+)/.exec(r.stdout)?.[1] ?? "0");
}

describe("a hidden dashboard tab", { timeout: 300_000 }, () => {
  let world;
  let browser;

  before(async () => {
    world = new World();
    await world.startDaemon(0);
    browser = await chromium.launch({ executablePath: CHROMIUM });
  });

  after(async () => {
    await browser?.close();
    await world?.close();
  });

  test("closes its streams after its timeout, then resumes and shows what it missed, once", async () => {
    const project = world.project("hidden", { files: { ".devenv/config.yml": CONFIG, "ticker.py": TICKER } });
    await world.devenv(["up"], { cwd: project });
    const dash = await world.dashboard();
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    // The page's streaming gRPC-web calls that are open right now.
    const open = new Set();
    page.on("request", (r) => { if (STREAMS.some((s) => r.url().endsWith(s))) open.add(r); });
    page.on("requestfinished", (r) => open.delete(r));
    page.on("requestfailed", (r) => open.delete(r));
    const openStreams = () => STREAMS.map((s) => [...open].filter((r) => r.url().endsWith(s)).length);

    await page.goto(dash.url);
    await page.locator('tr[data-service="idle"][data-state="ready"]').waitFor({ timeout: 30_000 });
    await page.locator(".log-row .log-text", { hasText: "tick 000005" }).first().waitFor({ timeout: 30_000 });
    await until("the Watch and the log stream open", () => JSON.stringify(openStreams()) === "[1,1]", 10_000);

    await setHidden(page, true);
    const hiddenAt = Date.now();
    await until("both streams closed while hidden", () => JSON.stringify(openStreams()) === "[0,0]", SUSPEND_MS + 15_000);
    const closedAfter = Date.now() - hiddenAt;
    assert.ok(closedAfter >= SUSPEND_MS - 200, `closed after its timeout, not before (${String(closedAfter)} ms)`);
    await page.locator(".log-status", { hasText: "paused while the tab is hidden" }).waitFor({ timeout: 5_000 });
    const heldBefore = await downloadedTicks(page);
    assert.ok(heldBefore.length > 0, "the page held tick lines before it slept");
    const lastHeld = heldBefore[heldBefore.length - 1];

    // What happens while nobody looks: a service stopped, about 50 more lines.
    await world.devenv(["stop", "idle"], { cwd: project });
    await until("the daemon to hold 50 lines the page has not seen", async () => (await daemonTick(world, project)) >= lastHeld + 50, 30_000);
    assert.equal(await page.locator('tr[data-service="idle"]').getAttribute("data-state"), "ready", "a suspended page shows no changes");
    assert.equal(JSON.stringify(await downloadedTicks(page)), JSON.stringify(heldBefore), "nor new lines");
    assert.equal(JSON.stringify(openStreams()), "[0,0]", "and opens no stream while hidden");

    await setHidden(page, false);
    await until("both streams open again", () => JSON.stringify(openStreams()) === "[1,1]", 15_000);
    await page.locator('tr[data-service="idle"][data-state="stopped"]').waitFor({ timeout: 15_000 });
    const shown = await daemonTick(world, project);
    await page.locator(".log-row .log-text", { hasText: `tick ${String(shown).padStart(6, "0")}` }).first().waitFor({ timeout: 15_000 });
    // The note comes before the lines it announces, so it is likely above the view by
    // now, and only the rows in (and near) the view exist: scroll up to it.
    await until("the 'reconnected' note in the log view", async () => {
      if ((await page.locator(".log-row.log-note", { hasText: "reconnected" }).count()) > 0) return true;
      await page.locator(".log-scroll").evaluate((el) => { el.scrollTop = Math.max(0, el.scrollTop - el.clientHeight); });
      return false;
    }, 10_000, 100);

    // Every line once, in order, from the first the page held to one printed after it
    // came back: the lines printed while it slept are there, none twice.
    const ticks = await downloadedTicks(page);
    const dupes = ticks.filter((t, i) => ticks.indexOf(t) !== i);
    assert.deepEqual(dupes, [], "no line shown twice");
    const gaps = ticks.slice(1).flatMap((t, i) => (t === ticks[i] + 1 ? [] : [`${String(ticks[i])} -> ${String(t)}`]));
    assert.deepEqual(gaps, [], "no line missing or out of order");
    assert.equal(ticks[0], heldBefore[0], "what it held is kept");
    assert.ok(ticks[ticks.length - 1] >= shown, `caught up to tick ${String(shown)} (last shown ${String(ticks[ticks.length - 1])})`);
    assert.ok(ticks.length > heldBefore.length + 50, "the lines printed while hidden are shown");

    await page.close();
    await world.devenv(["down"], { cwd: project });
  });
});
