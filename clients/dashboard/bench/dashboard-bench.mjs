// Dashboard benchmark (issue 13), devenv's page and Tilt's side by side in one Chromium:
// the same 300 services (10 print 100 lines/s each, 290 sleep; 30..299 depend on one of
// the first 30; every one with an exec readiness probe every 10 s), run by a real
// devenvd built from this workspace and by Tilt (`tilt up`, local_resource serve_cmd).
// For each: first meaningful paint, restart clicked in the page -> its row changed in
// the DOM (median, p99), the page's main-thread busy time and renderer CPU, JS heap at
// the end, and the daemon's CPU (devenvd / tilt) with 5 pages open. devenv's page also
// reports state change -> DOM from the daemon's own timestamp of each change. A program,
// not a test: it prints figures and a table.
//
//   node bench/dashboard-bench.mjs                 # 60 s of load each (BENCH_SECONDS)
//   BENCH_SECONDS=600 node bench/dashboard-bench.mjs
//   BENCH_PEERS=devenv node bench/dashboard-bench.mjs   # devenv only (no Tilt needed)
//
// Needs: cargo build --release -p devenvd -p devenv-cli (DEVENVD / DEVENV select the
// binaries; default target/release, else target/debug); Tilt with its web UI from
// `bash scripts/install-bench-tools.sh tilt` (TILT selects the binary); /usr/bin/chromium.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { mainThreadTicks, traceFor } from "./trace.mjs";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 300);
const LOGGERS = 10;
const LINES_PER_SECOND = Number(process.env.BENCH_LINES ?? 1000);
const PAGES = 5;
const PROBE_PERIOD = 10;
/** After the measured run, this long again under a Chromium trace (its own figures: tracing costs the page too). */
const TRACE_SECONDS = Number(process.env.BENCH_TRACE_SECONDS ?? 15);
/**
 * BENCH_NICE=1 runs the services at nice 19: the same load, but it yields the cores to
 * the daemon and the browser, which tells the page's own latency from its waiting for
 * a core on this 2-core machine.
 */
const NICE = process.env.BENCH_NICE === "1";
const PEERS = (process.env.BENCH_PEERS ?? "devenv,tilt").split(",").map((p) => p.trim()).filter(Boolean);
const TILT = process.env.TILT ?? join(process.env.DEVENV_TOOLS_DIR ?? join(homedir(), ".cache/devenv-tools"), "bin/tilt");
for (const p of PEERS) if (!["devenv", "tilt"].includes(p)) throw new Error(`BENCH_PEERS: unknown peer '${p}' (devenv, tilt)`);
if (PEERS.includes("tilt") && !existsSync(TILT)) {
  throw new Error(`tilt not found at ${TILT}: bash scripts/install-bench-tools.sh tilt (or BENCH_PEERS=devenv)`);
}

// Prefer release binaries: the bench measures the page, not a debug daemon.
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const release = join(repoRoot, "target/release");
if (!process.env.DEVENVD && existsSync(join(release, "devenvd"))) process.env.DEVENVD = join(release, "devenvd");
if (!process.env.DEVENV && existsSync(join(release, "devenv"))) process.env.DEVENV = join(release, "devenv");
const { CHROMIUM, DEVENV, DEVENVD, freePorts, until, World } = await import("../test/browser/harness.mjs");

const name = (i) => `svc-${String(i).padStart(3, "0")}`;
const perLogger = LINES_PER_SECOND / LOGGERS;
/** Service i's argv, the same for both. */
const argv = (i) => [
  ...(NICE ? ["nice", "-n", "19"] : []),
  ...(i < LOGGERS ? ["python3", "-u", "logger.py", name(i), String(perLogger)] : ["sleep", "1000000"]),
];
/** A few layers of dependencies, as a real stack has. */
const dependency = (i) => (i >= 30 ? name(i % 30) : null);

function devenvConfig() {
  const lines = ["apiVersion: devenv/v1", "kind: Environment", "metadata:", "  name: bench300", "spec:", "  services:"];
  for (let i = 0; i < SERVICES; i++) {
    lines.push(`    - name: ${name(i)}`);
    lines.push(`      command: ${JSON.stringify(argv(i))}`);
    lines.push(`      readiness: { exec: { command: [\"true\"] }, periodSeconds: ${String(PROBE_PERIOD)} }`);
    if (dependency(i)) lines.push(`      dependencies: [${dependency(i)}]`);
  }
  return lines.join("\n") + "\n";
}

function tiltfile() {
  const lines = ["# 300 local services as dashboard-bench.mjs runs them under devenv."];
  for (let i = 0; i < SERVICES; i++) {
    const deps = dependency(i) ? `, resource_deps=[${JSON.stringify(dependency(i))}]` : "";
    lines.push(
      `local_resource(${JSON.stringify(name(i))}, serve_cmd=${JSON.stringify(argv(i))}, ` +
        `readiness_probe=probe(period_secs=${String(PROBE_PERIOD)}, exec=exec_action(["true"]))${deps})`,
    );
  }
  return lines.join("\n") + "\n";
}

const LOGGER = `import sys, time
name, rate = sys.argv[1], float(sys.argv[2])
colors = ["\\x1b[32m", "\\x1b[33m", "\\x1b[36m", ""]
i = 0
start = time.monotonic()
while True:
    i += 1
    print(f"{colors[i % 4]}{name} request {i} GET /api/items?page={i % 50} -> 200 in {i % 97} ms\\x1b[0m", flush=(i % 10 == 0))
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
`;

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function cpuTicks(pid) {
  const f = readFileSync(`/proc/${String(pid)}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14 and 15)
}

/** pid -> [parent pid, cmdline] of every process. */
function processes() {
  const out = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8").split(") ")[1].split(" ");
      out.set(Number(d), [Number(stat[1]), readFileSync(`/proc/${d}/cmdline`, "utf8").replace(/\0/g, " ")]);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The renderer processes below `root` (the measured page's browser). */
function renderers(root) {
  const procs = processes();
  const out = [];
  for (const [pid, [, cmd]] of procs) {
    if (!cmd.includes("--type=renderer")) continue;
    for (let p = pid, hops = 0; p > 1 && hops < 20; p = procs.get(p)?.[0] ?? 0, hops++) {
      if (p === root) {
        out.push(pid);
        break;
      }
    }
  }
  return out;
}

/** CPU ticks of the renderer processes below `root`, all threads. */
function rendererTicks(root) {
  let ticks = 0;
  for (const pid of renderers(root)) {
    try {
      ticks += cpuTicks(pid);
    } catch {
      // gone meanwhile
    }
  }
  return ticks;
}

/** CPU ticks of the main threads (CrRendererMain) of the renderers below `root`. */
const mainTicks = (root) => mainThreadTicks(readFileSync, renderers(root));

const fmt = (v, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : "n/a");
const HZ = 100; // USER_HZ

// What differs between the two pages, as functions evaluated in the page.
const PAGE = {
  devenv: {
    /** Every service row is there with its state. */
    painted: (n) => document.querySelectorAll("tbody tr[data-service][data-state]").length >= n,
    sig: (svc) => document.querySelector(`tr[data-service="${svc}"]`)?.dataset.state ?? "",
    /** Clicks the row's Restart button; false when there is none to click. */
    restart: (svc) => {
      const b = document.querySelector(`tr[data-service="${svc}"] button[data-action="restart"]:not([hidden]):not([disabled])`);
      b?.click();
      return Boolean(b);
    },
  },
  tilt: {
    // Tilt lists 20 resources at first ("…Show more" doubles that): its first screen is
    // complete when 20 items show a status and its summary counts every resource.
    painted: (n) => {
      const items = document.querySelectorAll("[data-name]");
      const total = document.querySelector('[aria-label="Out of total resource count"]')?.textContent ?? "";
      return items.length >= Math.min(20, n) && Number(total.replace(/\D/g, "")) >= n;
    },
    // The item's status icons (isHealthy, isPending, isBuilding, ...) and the time of its
    // last update (a serve_cmd restarted and probed ready within one of Tilt's view
    // updates keeps its icons; the time is what changes), not the "time ago" text.
    sig: (svc) => {
      const item = document.querySelector(`[data-name="${svc}"]`);
      if (!item) return "";
      const classes = [item, ...item.querySelectorAll("*")].flatMap((e) => [...e.classList].filter((c) => /^is[A-Z]/.test(c)));
      return `${classes.join(" ")} ${item.querySelector("time")?.getAttribute("datetime") ?? ""}`;
    },
    // The item's trigger button (it restarts a serve_cmd); while an update is queued or
    // running it is disabled.
    restart: (svc) => {
      const b = document.querySelector(`[data-name="${svc}"] button[aria-label="Trigger update"]:not([disabled])`);
      b?.click();
      return Boolean(b);
    },
  },
};

/** Starts tilt up on the Tiltfile in `dir`; resolves with its pid once every resource is ready. */
async function startTilt(dir, port) {
  writeFileSync(join(dir, "Tiltfile"), tiltfile());
  const env = {
    ...process.env,
    TILT_DISABLE_ANALYTICS: "1",
    TILT_DEV_DIR: join(dir, ".tilt-dev"),
    WINDMILL_DIR: join(dir, ".windmill"),
    HOME: join(dir, "home"),
  };
  mkdirSync(env.HOME, { recursive: true });
  const log = join(dir, "tilt.log");
  const out = openSync(log, "a");
  // --stream: logs to stdout (a file here) instead of the terminal UI.
  const child = spawn(TILT, ["up", "--port", String(port), "--host", "127.0.0.1", "--web-mode=prod", "--stream"], {
    cwd: dir,
    env,
    stdio: ["ignore", out, out],
  });
  const exited = new Promise((r) => child.on("exit", (code, sig) => r({ code, sig })));
  const tail = () => readFileSync(log, "utf8").slice(-2000);
  const tilt = (args, timeout = 60_000) =>
    new Promise((resolve) => {
      const c = spawn(TILT, [...args, "--port", String(port)], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"], timeout });
      let text = "";
      c.stdout.on("data", (d) => { text += d.toString(); });
      c.stderr.on("data", (d) => { text += d.toString(); });
      c.on("close", (code) => resolve({ code, text }));
    });
  await until("tilt's API to answer", async () => {
    const dead = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 10))]);
    if (dead) throw new Error(`tilt up exited (${JSON.stringify(dead)}): ${tail()}`);
    return (await tilt(["get", "uiresource"])).code === 0;
  }, 120_000, 500);
  const r = await tilt(["wait", "--for=condition=Ready", "uiresource", "--all", "--timeout=600s"], 620_000);
  if (r.code !== 0) throw new Error(`tilt wait for every resource to be ready failed: ${r.text}\n${tail()}`);
  return { child, exited, tilt };
}

/**
 * The same Watch stream to a client that is not a browser: `devenv status --watch --json`,
 * each line stamped when it arrives. Set beside the page's own record of each change, it
 * tells the daemon's (and the machine's) part of change -> DOM from the page's.
 */
function watchCli(project, env) {
  const child = spawn(DEVENV, ["status", "--watch", "--json"], { cwd: project, env, stdio: ["ignore", "pipe", "ignore"] });
  const seen = [];
  let buf = "";
  child.stdout.on("data", (d) => {
    const at = Date.now();
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const j = JSON.parse(line);
        if (j.name && j.state) seen.push({ service: j.name, state: j.state, at });
      } catch {
        // not a status line
      }
    }
  });
  return { seen, stop: () => child.kill() };
}

/** For each change the page showed, when the CLI got it: [cli ms, page ms] after the daemon's time of it. */
function pairChanges(pageRecords, cliSeen) {
  const pairs = [];
  for (const r of pageRecords) {
    let best = null;
    for (const c of cliSeen) {
      if (c.service !== r.service || c.state !== r.state || c.at < r.since - 5) continue;
      if (!best || c.at < best.at) best = c;
    }
    if (best) pairs.push([best.at - r.since, r.shown - r.since]);
  }
  return pairs;
}

/** Restarts a random idle service from the page every 2 s for `seconds`; the click -> row changed times. */
async function restartLoop(page, seconds) {
  const w0 = Date.now();
  // State changes while the logs flow: restart one idle service from the page every
  // 2 s and time the click -> its row changed in the DOM.
  const clicks = [];
  let missed = 0;
  let unclickable = 0; // its restart button was not there (or disabled) at the time
  while (Date.now() - w0 < seconds * 1000) {
    const svc = name(LOGGERS + Math.floor(Math.random() * (SERVICES - LOGGERS)));
    const ms = await page.evaluate((s) => new Promise((resolve) => {
      const before = window.__sig(s);
      const t0 = performance.now();
      // Every DOM change is looked at (a state shown for less than a frame counts too).
      const done = (v) => {
        observer.disconnect();
        clearTimeout(timer);
        resolve(v);
      };
      const observer = new MutationObserver(() => {
        if (window.__sig(s) !== before) done(performance.now() - t0);
      });
      const timer = setTimeout(() => { done(-1); }, 30_000);
      observer.observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["class", "data-state", "datetime"] });
      if (!window.__restart(s)) done(null);
    }), svc);
    if (ms === null) unclickable++;
    else if (ms < 0) missed++;
    else clicks.push(ms);
    await new Promise((r) => setTimeout(r, 2000));
  }
  return { clicks, missed, unclickable };
}

/** Measures one page: `peer` is "devenv" or "tilt", `url` its page, `daemonPid` the daemon. */
async function measure(peer, { browser, root, othersBrowser, url, daemonPid, expand, cli }) {
  const js = PAGE[peer];
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  // As source text: evaluated by the browser's debugger, which the page's CSP (no eval)
  // does not restrict.
  await context.addInitScript({
    content: `{
      const done = ${js.painted.toString()};
      const check = () => {
        if (done(${String(SERVICES)})) window.__fmp = performance.now();
        else requestAnimationFrame(check);
      };
      requestAnimationFrame(check);
    }`,
  });
  const page = await context.newPage();
  await page.goto(url);
  // Navigation start (for devenv the token URL; its redirect is part of opening the page).
  const fmp = await until(`${peer}: first screen painted`, () => page.evaluate(() => window.__fmp), 120_000, 50);
  console.log(`${peer}: first meaningful paint: ${fmt(fmp)} ms`);
  const all = expand ? await expand(page) : fmp;
  await page.evaluate(`window.__sig = ${js.sig.toString()}; window.__restart = ${js.restart.toString()}; 0`);

  // The other pages, for the daemon's CPU: each in its own browser context, as five
  // people (or browsers) would have them; one browser profile allows 6 HTTP/1.1
  // connections per host, and each live devenv page holds 2 streams.
  const others = [];
  for (let i = 1; i < PAGES; i++) {
    const c = await othersBrowser.newContext({ viewport: { width: 1440, height: 900 } });
    others.push(c);
    const p = await c.newPage();
    await p.goto(url);
    await until(`${peer}: page ${String(i + 1)} painted`, () => p.evaluate(js.painted, SERVICES), 120_000, 100);
  }
  const cdp = await context.newCDPSession(page);
  await cdp.send("Performance.enable");
  const metrics = async () => Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((m) => [m.name, m.value]));
  if (peer === "devenv") {
    await page.evaluate(() => {
      window.devenvDashboardPerf.changeLatencies.length = 0;
      window.devenvDashboardPerf.changeRecords.length = 0;
    });
  }
  const watcher = cli ? cli() : null;
  const m0 = await metrics();
  const c0 = cpuTicks(daemonPid);
  const r0 = rendererTicks(root);
  const t0 = mainTicks(root);
  const w0 = Date.now();
  const { clicks, missed, unclickable } = await restartLoop(page, SECONDS);
  const wall = (Date.now() - w0) / 1000;
  const m1 = await metrics();
  const c1 = cpuTicks(daemonPid);
  const r1 = rendererTicks(root);
  const t1 = mainTicks(root);
  watcher?.stop();
  clicks.sort((a, b) => a - b);
  const since = peer === "devenv"
    ? (await page.evaluate(() => [...window.devenvDashboardPerf.changeLatencies])).sort((a, b) => a - b)
    : [];
  let cliPairs = [];
  if (watcher) {
    const records = await page.evaluate(() => [...window.devenvDashboardPerf.changeRecords]);
    cliPairs = pairChanges(records, watcher.seen);
  }
  const cliLat = cliPairs.map(([c]) => c).sort((a, b) => a - b);
  const pageLat = cliPairs.map(([, p]) => p).sort((a, b) => a - b);
  const r = {
    fmp,
    paired: cliPairs.length,
    cliMedian: pct(cliLat, 50),
    cliP99: pct(cliLat, 99),
    pairedPageMedian: pct(pageLat, 50),
    pairedPageP99: pct(pageLat, 99),
    all,
    clicks: clicks.length,
    missed,
    unclickable,
    clickMedian: pct(clicks, 50),
    clickP99: pct(clicks, 99),
    sinceCount: since.length,
    sinceMedian: pct(since, 50),
    sinceP99: pct(since, 99),
    renderer: ((r1 - r0) / HZ / wall) * 100,
    mainCpu: ((t1 - t0) / HZ / wall) * 100,
    busy: ((m1.TaskDuration - m0.TaskDuration) / wall) * 100,
    script: ((m1.ScriptDuration - m0.ScriptDuration) / wall) * 100,
    layout: ((m1.LayoutDuration - m0.LayoutDuration) / wall) * 100,
    heap0: m0.JSHeapUsedSize / 1048576,
    heap1: m1.JSHeapUsedSize / 1048576,
    nodes: m1.Nodes,
    daemon: ((c1 - c0) / HZ / wall) * 100,
  };
  console.log(`${peer}: restart clicked -> row changed: ${String(r.clicks)} (${String(missed)} not seen in 30 s, ${String(unclickable)} buttons not clickable), median ${fmt(r.clickMedian, 1)} ms, p99 ${fmt(r.clickP99, 1)} ms`);
  if (peer === "devenv") console.log(`${peer}: state change -> DOM (daemon's timestamp): ${String(r.sinceCount)} changes, median ${fmt(r.sinceMedian, 1)} ms, p99 ${fmt(r.sinceP99, 1)} ms`);
  if (watcher) console.log(`${peer}: the same changes (${String(r.paired)}) to \`devenv status --watch --json\`: median ${fmt(r.cliMedian, 1)} ms, p99 ${fmt(r.cliP99, 1)} ms; to the page's DOM: median ${fmt(r.pairedPageMedian, 1)} ms, p99 ${fmt(r.pairedPageP99, 1)} ms`);
  console.log(`${peer}: page renderer CPU ${fmt(r.renderer, 1)} %; main thread busy ${fmt(r.busy, 1)} % (script ${fmt(r.script, 1)} %, layout ${fmt(r.layout, 1)} %)`);
  console.log(`${peer}: JS heap ${fmt(r.heap0, 1)} -> ${fmt(r.heap1, 1)} MiB, DOM nodes ${String(r.nodes)}; daemon CPU with ${String(PAGES)} pages: ${fmt(r.daemon, 1)} %`);
  console.log(`${peer}: main thread CPU (CrRendererMain utime+stime) ${fmt(r.mainCpu, 1)} % of a core`);
  if (TRACE_SECONDS > 0) {
    // The same load again under a trace: what the main thread's time is made of.
    const [trace] = await Promise.all([traceFor(cdp, TRACE_SECONDS * 1000), restartLoop(page, TRACE_SECONDS)]);
    r.trace = trace;
    if (trace) {
      const kinds = (o) => Object.entries(o).map(([k, v]) => `${k} ${fmt(v, 1)} %`).join(", ");
      console.log(`${peer}: trace, ${String(TRACE_SECONDS)} s: main thread busy ${fmt(trace.busyWall, 1)} % wall, ${fmt(trace.busyCpu, 1)} % on a CPU; ${String(trace.tasks)} tasks, ${String(trace.longTasks)} over 50 ms wall (longest ${fmt(trace.maxTaskMs)} ms), ${String(trace.longCpuTasks)} over 50 ms of CPU (longest ${fmt(trace.maxTaskCpuMs)} ms)`);
      if (trace.dropped > 0) console.log(`${peer}: trace: ${String(trace.dropped)} events past the first 1,000,000 not kept (figures are of the time the kept ones cover)`);
      console.log(`${peer}: trace: self time, wall: ${kinds(trace.kinds)}`);
      console.log(`${peer}: trace: self time, on a CPU: ${kinds(trace.kindsCpu)}`);
      const names = (list) => list.map((n) => `${n.name} ${fmt(n.ms)}/${fmt(n.cpuMs)}`).join(", ");
      if (trace.longNames.length > 0) console.log(`${peer}: trace: tasks over 50 ms, self time by event (ms wall/CPU): ${names(trace.longNames)}`);
      for (const t of trace.longest) console.log(`${peer}: trace: a ${fmt(t.ms)} ms task (${fmt(t.cpuMs)} ms CPU): ${names(t.names)}`);
    }
  }
  for (const c of others) await c.close();
  await context.close();
  return r;
}

const results = {};
const world = new World();
let browser;
let othersBrowser;
let tiltRun;
try {
  // The measured page has a browser of its own, so its renderer's CPU can be read
  // from /proc; the other pages share a second one.
  const before = new Set([...processes()].filter(([, [ppid]]) => ppid === process.pid).map(([pid]) => pid));
  browser = await chromium.launch({ executablePath: CHROMIUM });
  const root = [...processes()].find(([pid, [ppid]]) => ppid === process.pid && !before.has(pid))?.[0] ?? -1;
  othersBrowser = await chromium.launch({ executablePath: CHROMIUM });
  console.log(`${String(SERVICES)} services, ${String(LINES_PER_SECOND)} lines/s, ${String(SECONDS)} s of load per page; chromium ${browser.version()}`);

  if (PEERS.includes("devenv")) {
    const project = world.project("bench300", { files: { ".devenv/config.yml": devenvConfig(), "logger.py": LOGGER } });
    await world.startDaemon(0);
    const daemonPid = world.daemon.child.pid;
    const t0 = Date.now();
    await world.devenv(["up"], { cwd: project, timeout: 600_000 });
    console.log(`devenv: devenvd ${DEVENVD} (pid ${String(daemonPid)}); up of ${String(SERVICES)} services: ${String(Date.now() - t0)} ms`);
    const dash = await world.dashboard();
    results.devenv = await measure("devenv", { browser, root, othersBrowser, url: dash.url, daemonPid, cli: () => watchCli(project, world.env) });
    await world.devenv(["down"], { cwd: project, timeout: 600_000 });
    await world.killDaemon("SIGTERM");
  }

  if (PEERS.includes("tilt")) {
    const dir = world.project("tilt300", { files: { "logger.py": LOGGER } });
    const [port] = await freePorts(1);
    const t0 = Date.now();
    tiltRun = await startTilt(dir, port);
    console.log(`tilt: ${TILT} (pid ${String(tiltRun.child.pid)}); up of ${String(SERVICES)} resources: ${String(Date.now() - t0)} ms`);
    // Tilt's all-logs page: every resource's logs and the resource list, as devenv's page.
    const url = `http://127.0.0.1:${String(port)}/r/(all)/overview`;
    // Then all 300 in its list, as devenv's page has them: "…Show more" until it is.
    const expand = async (page) => {
      const t = await page.evaluate(() => performance.now());
      // A DOM click: the page is too busy for playwright's actionability checks.
      await until("tilt: every resource in its list", () => page.evaluate((n) => {
        if (document.querySelectorAll("[data-name]").length >= n) return true;
        [...document.querySelectorAll("button")].find((b) => b.textContent.includes("Show more"))?.click();
        return false;
      }, SERVICES), 120_000, 100);
      const ms = (await page.evaluate(() => performance.now())) - t;
      console.log(`tilt: "Show more" until all ${String(SERVICES)} are listed: ${fmt(ms)} ms`);
      return ms;
    };
    results.tilt = await measure("tilt", { browser, root, othersBrowser, url, daemonPid: tiltRun.child.pid, expand });
  }

  // The table the docs quote.
  const cols = PEERS.filter((p) => results[p]);
  const row = (label, f) => `| ${label} | ${cols.map((p) => f(results[p], p)).join(" | ")} |`;
  console.log("");
  console.log(`| ${String(SECONDS)} s, ${String(SERVICES)} services, ${String(LINES_PER_SECOND)} lines/s | ${cols.join(" | ")} |`);
  console.log(`| --- | ${cols.map(() => "---").join(" | ")} |`);
  console.log(row("first meaningful paint", (r, p) => `${fmt(r.fmp)} ms${p === "tilt" ? ` (20 listed; all ${String(SERVICES)}: +${fmt(r.all)} ms of Show more)` : ` (all ${String(SERVICES)})`}`));
  console.log(row("restart clicked -> row changed, median / p99", (r) => `${fmt(r.clickMedian)} / ${fmt(r.clickP99)} ms (${String(r.clicks)}${r.missed ? `, ${String(r.missed)} unseen` : ""}${r.unclickable ? `, ${String(r.unclickable)} not clickable` : ""})`));
  console.log(row("state change -> DOM (daemon's time), median / p99", (r, p) => (p === "devenv" ? `${fmt(r.sinceMedian)} / ${fmt(r.sinceP99)} ms` : "not measurable (see docs)")));
  console.log(row("the same changes to `devenv status --watch` (CLI) / to the DOM, median / p99", (r, p) => (p === "devenv" ? `${fmt(r.cliMedian)} / ${fmt(r.cliP99)} ms (CLI), ${fmt(r.pairedPageMedian)} / ${fmt(r.pairedPageP99)} ms (DOM), ${String(r.paired)} changes` : "n/a")));
  console.log(row("main thread busy (script, layout)", (r) => `${fmt(r.busy)} % (${fmt(r.script)} %, ${fmt(r.layout)} %)`));
  console.log(row("main thread on a CPU (CrRendererMain utime+stime)", (r) => `${fmt(r.mainCpu, 1)} %`));
  console.log(row("page renderer CPU", (r) => `${fmt(r.renderer, 1)} %`));
  if (TRACE_SECONDS > 0) {
    console.log(row(`trace (${String(TRACE_SECONDS)} s): main thread wall / on a CPU`, (r) => (r.trace ? `${fmt(r.trace.busyWall)} % / ${fmt(r.trace.busyCpu)} %` : "n/a")));
    const kinds = (o) => Object.entries(o).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(", ");
    console.log(row("trace: self time by kind, % wall", (r) => (r.trace ? kinds(r.trace.kinds) : "n/a")));
    console.log(row("trace: self time by kind, % on a CPU", (r) => (r.trace ? kinds(r.trace.kindsCpu) : "n/a")));
    console.log(row("trace: tasks over 50 ms wall / CPU (longest)", (r) => (r.trace ? `${String(r.trace.longTasks)} (${fmt(r.trace.maxTaskMs)} ms) / ${String(r.trace.longCpuTasks)} (${fmt(r.trace.maxTaskCpuMs)} ms)` : "n/a")));
  }
  console.log(row("JS heap start -> end", (r) => `${fmt(r.heap0, 1)} -> ${fmt(r.heap1, 1)} MiB`));
  console.log(row("DOM nodes at the end", (r) => String(r.nodes)));
  console.log(row(`daemon CPU, ${String(PAGES)} pages open`, (r, p) => `${fmt(r.daemon, 1)} % (${p === "tilt" ? "tilt" : "devenvd"})`));
} finally {
  await browser?.close();
  await othersBrowser?.close();
  if (tiltRun) {
    tiltRun.child.kill("SIGTERM");
    await Promise.race([tiltRun.exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (tiltRun.child.exitCode === null && tiltRun.child.signalCode === null) tiltRun.child.kill("SIGKILL");
  }
  await world.close();
}
