// Dashboard benchmark (issue 13): 300 services, about 1,000 log lines/s in total,
// the page open in Chromium against a real devenvd built from this workspace.
// Measures: first meaningful paint (navigation start -> all 300 rows shown with a
// state), state change -> DOM updated (daemon's ServiceStatus.since -> the row
// updated, median and p99, over restarts made while it runs), the page's main-thread
// busy time (CDP Performance TaskDuration per wall second), JS heap at the end, and
// the daemon's CPU with 5 pages open. A program, not a test: it prints figures.
//
//   node bench/dashboard-bench.mjs                 # 60 s of load (BENCH_SECONDS)
//   BENCH_SECONDS=600 node bench/dashboard-bench.mjs
//
// Build first: cargo build --release -p devenvd -p devenv-cli (DEVENVD / DEVENV
// select the binaries; default target/release, else target/debug).
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 300);
const LOGGERS = 10;
const LINES_PER_SECOND = Number(process.env.BENCH_LINES ?? 1000);
const PAGES = 5;

// Prefer release binaries: the bench measures the page, not a debug daemon.
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const release = join(repoRoot, "target/release");
if (!process.env.DEVENVD && existsSync(join(release, "devenvd"))) process.env.DEVENVD = join(release, "devenvd");
if (!process.env.DEVENV && existsSync(join(release, "devenv"))) process.env.DEVENV = join(release, "devenv");
const { CHROMIUM, DEVENVD, until, World } = await import("../test/browser/harness.mjs");

function config() {
  const perLogger = LINES_PER_SECOND / LOGGERS;
  const lines = ["apiVersion: devenv/v1", "kind: Environment", "metadata:", "  name: bench300", "spec:", "  services:"];
  for (let i = 0; i < SERVICES; i++) {
    const name = `svc-${String(i).padStart(3, "0")}`;
    lines.push(`    - name: ${name}`);
    if (i < LOGGERS) {
      lines.push(`      command: [python3, -u, logger.py, "${name}", "${String(perLogger)}"]`);
    } else {
      lines.push("      command: [sleep, \"1000000\"]");
    }
    // A few layers of dependencies, as a real stack has.
    if (i >= 30) lines.push(`      dependencies: [svc-${String(i % 30).padStart(3, "0")}]`);
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

/** CPU ticks of the renderer processes below `root` (the measured page's browser). */
function rendererTicks(root) {
  const procs = processes();
  let ticks = 0;
  for (const [pid, [, cmd]] of procs) {
    if (!cmd.includes("--type=renderer")) continue;
    for (let p = pid, hops = 0; p > 1 && hops < 20; p = procs.get(p)?.[0] ?? 0, hops++) {
      if (p === root) {
        try {
          ticks += cpuTicks(pid);
        } catch {
          // gone meanwhile
        }
        break;
      }
    }
  }
  return ticks;
}

const world = new World();
let browser;
try {
  const project = world.project("bench300", { files: { ".devenv/config.yml": config(), "logger.py": LOGGER } });
  await world.startDaemon(0);
  const daemonPid = world.daemon.child.pid;
  console.log(`devenvd ${DEVENVD} (pid ${String(daemonPid)}); ${String(SERVICES)} services, ${String(LINES_PER_SECOND)} lines/s, ${String(SECONDS)} s`);
  const t0 = Date.now();
  await world.devenv(["up"], { cwd: project, timeout: 600_000 });
  console.log(`up of ${String(SERVICES)} services: ${String(Date.now() - t0)} ms`);
  const dash = await world.dashboard();

  // The measured page has a browser of its own, so its renderer's CPU can be read
  // from /proc; the other pages share a second one.
  const before = new Set([...processes()].filter(([, [ppid]]) => ppid === process.pid).map(([pid]) => pid));
  browser = await chromium.launch({ executablePath: CHROMIUM });
  const root = [...processes()].find(([pid, [ppid]]) => ppid === process.pid && !before.has(pid))?.[0] ?? -1;
  const othersBrowser = await chromium.launch({ executablePath: CHROMIUM });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  // First meaningful paint: every service row is there with its state.
  await context.addInitScript((n) => {
    const check = () => {
      if (document.querySelectorAll("tbody tr[data-service][data-state]").length >= n) {
        window.__fmp = performance.now();
      } else {
        requestAnimationFrame(check);
      }
    };
    requestAnimationFrame(check);
  }, SERVICES);
  const page = await context.newPage();
  await page.goto(dash.url);
  const fmp = await until("all rows painted", () => page.evaluate(() => window.__fmp), 60_000, 50);
  // Navigation started at the /auth request; the redirect to / is part of opening the page.
  console.log(`first meaningful paint (${String(SERVICES)} rows with state): ${fmp.toFixed(0)} ms`);

  // The other pages, for the daemon's CPU: each in its own browser context, as five
  // people (or browsers) would have them; one browser profile allows 6 HTTP/1.1
  // connections per host, and each live page holds 2 streams.
  for (let i = 1; i < PAGES; i++) {
    const c = await othersBrowser.newContext({ viewport: { width: 1440, height: 900 } });
    const p = await c.newPage();
    await p.goto(dash.url);
    await p.locator("tbody tr[data-service]").first().waitFor();
  }
  const cdp = await context.newCDPSession(page);
  await cdp.send("Performance.enable");
  const metrics = async () => Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((m) => [m.name, m.value]));
  await page.evaluate(() => { window.devenvDashboardPerf.changeLatencies.length = 0; });
  const m0 = await metrics();
  const c0 = cpuTicks(daemonPid);
  const r0 = rendererTicks(root);
  const w0 = Date.now();
  // State changes while the logs flow: restart one idle service every 2 s.
  let restarts = 0;
  while (Date.now() - w0 < SECONDS * 1000) {
    const i = LOGGERS + Math.floor(Math.random() * (SERVICES - LOGGERS));
    await world.devenv(["restart", `svc-${String(i).padStart(3, "0")}`], { cwd: project });
    restarts++;
    await new Promise((r) => setTimeout(r, 2000));
  }
  const wall = (Date.now() - w0) / 1000;
  const m1 = await metrics();
  const c1 = cpuTicks(daemonPid);
  const r1 = rendererTicks(root);
  const latencies = (await page.evaluate(() => [...window.devenvDashboardPerf.changeLatencies])).sort((a, b) => a - b);
  const rows = await page.evaluate(() => document.querySelectorAll(".log-row:not([hidden])").length);
  const logLines = await page.evaluate(() => document.querySelector(".log-dropped")?.textContent ?? "");
  const hz = 100; // USER_HZ
  console.log(`restarts: ${String(restarts)}, state changes seen: ${String(latencies.length)}`);
  console.log(`state change -> DOM: median ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms, max ${pct(latencies, 100).toFixed(1)} ms`);
  console.log(`page renderer CPU: ${((((r1 - r0) / hz) / wall) * 100).toFixed(1)} % of one core (all its threads; browser pid ${String(root)})`);
  console.log(`main thread busy: ${(((m1.TaskDuration - m0.TaskDuration) / wall) * 100).toFixed(1)} % of one core (script ${(((m1.ScriptDuration - m0.ScriptDuration) / wall) * 100).toFixed(1)} %, layout ${(((m1.LayoutDuration - m0.LayoutDuration) / wall) * 100).toFixed(1)} %)`);
  console.log(`JS heap: ${(m1.JSHeapUsedSize / 1048576).toFixed(1)} MiB used (${(m0.JSHeapUsedSize / 1048576).toFixed(1)} MiB at the start of the load), DOM nodes ${String(m1.Nodes)}, log rows in the DOM ${String(rows)}`);
  console.log(`page buffer: ${logLines || "nothing dropped yet"}`);
  console.log(`devenvd CPU with ${String(PAGES)} pages open: ${((((c1 - c0) / hz) / wall) * 100).toFixed(1)} % of one core`);
  await world.devenv(["down"], { cwd: project, timeout: 600_000 });
  await othersBrowser.close();
} finally {
  await browser?.close();
  await world.close();
}
