// Runs the extension in a real VS Code: code-server 4.96.4 (VS Code 1.96.4, its real
// Node extension host) against a real devenvd serving a copy of the quickstart
// example, driven by Debian's Chromium through playwright-core.
//   1. the extension's own suite (dist/test/suite.js) inside the extension host, via
//      the workbench URL's extensionDevelopmentPath/extensionTestsPath payload; the
//      workbench reports its exit code through `codeAutomationExit`.
//   2. a UI test with the packaged .vsix installed: the devenv view in the workbench, a click on the inline "Restart
//      Service" action of `api` (the daemon must report a new pid), its "Open in Browser"
//      (the dialog's Open: a tab on api's router URL, answered by api), a screenshot for
//      the README (docs/img/vscode.png with --screenshot, else .test-out/).
//   3. autoUp: a workbench opened on the project, down, brings it up.
//   4. a daemon of an older protocol (test/old-daemon.mjs) on the socket: the
//      workbench shows the "too old" message and its Restart Daemon action replaces it.
//   (`--bench`) the benchmark of docs/benchmarks.md instead of 2-4.
//   (`--only=suite|ui|autoup|too-old`) that part alone, e.g. to run a flaky one
//   repeatedly; the default runs them all.
// Needs: dist/ built (npm run build), target/debug/devenvd and devenv (DEVENVD,
// DEVENV_CLI override), code-server (scripts/install-code-server.sh; CODE_SERVER
// overrides), /usr/bin/chromium (CHROMIUM overrides). Never downloads a browser.
import { spawn, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as util from "node:util";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const ext = path.resolve(here, "..");
const repo = path.resolve(ext, "../..");
const bench = process.argv.includes("--bench");
const PARTS = ["suite", "ui", "autoup", "too-old"];
const only = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length);
if (only !== undefined && !PARTS.includes(only)) {
  console.error(`vscode-test: --only=${only}: not a part; one of ${PARTS.join(", ")}`);
  process.exit(2);
}
/** Whether to run this part (all of them unless --only names one). */
const want = (part) => only === undefined || only === part;
const tools = process.env.DEVENV_TOOLS_DIR ?? path.join(os.homedir(), ".cache/devenv-tools");
const codeServer =
  process.env.CODE_SERVER ?? path.join(tools, "code-server-4.96.4/node_modules/code-server/out/node/entry.js");
const devenvd = process.env.DEVENVD ?? path.join(repo, "target/debug/devenvd");
const devenvCli = process.env.DEVENV_CLI ?? path.join(repo, "target/debug/devenv");
const browser = process.env.CHROMIUM ?? "/usr/bin/chromium";
// The README's screenshot is replaced only on request (--screenshot), so that a test
// run leaves the tree clean; otherwise it goes to .test-out/.
const screenshot = process.argv.includes("--screenshot")
  ? path.join(repo, "docs/img/vscode.png")
  : path.join(ext, ".test-out/vscode.png");

for (const [what, p, fix] of [
  ["code-server", codeServer, "bash scripts/install-code-server.sh"],
  ["devenvd", devenvd, "cargo build -p devenvd"],
  ["devenv", devenvCli, "cargo build -p devenv-cli"],
  ["chromium", browser, "apt-get install chromium"],
  ["the extension bundle", path.join(ext, "dist/extension.js"), "npm run build"],
  ["the .vsix", path.join(ext, "dist/devenv.vsix"), "npm run package"],
]) {
  if (!fs.existsSync(p)) fail(`${what} not found at ${p} (${fix})`);
}

function fail(msg) {
  console.error(`vscode-test: FAIL: ${msg}`);
  process.exitCode = 1;
  throw new Error(msg);
}

function log(msg) {
  console.error(`vscode-test: ${msg}`);
}

/** Free TCP ports on 127.0.0.1 (held until all are picked, so they differ). */
async function freePorts(n) {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise((res) => {
      const s = net.createServer();
      s.listen(0, "127.0.0.1", () => res(s));
    })),
  );
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  return ports;
}

/** Polls `check` until it returns a truthy value; fails after `ms`. */
async function until(what, ms, check) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "devenv-vscode-"));
const children = [];
function cleanup() {
  for (const c of children.reverse()) {
    if (c.exitCode === null) {
      try {
        process.kill(-c.pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
  }
}
process.on("exit", () => {
  cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const [dbPort, apiPort, webPort, csPort] = await freePorts(4);
const home = path.join(tmp, "home");
const runDir = path.join(tmp, "run");
fs.mkdirSync(home, { recursive: true });
fs.mkdirSync(runDir, { mode: 0o700 });
const socketDir = path.join(tmp, "sock");
fs.mkdirSync(socketDir, { mode: 0o700 });
const socket = path.join(socketDir, "devenvd.sock");
const project = path.join(tmp, "project");
fs.cpSync(path.join(repo, "examples/quickstart"), project, { recursive: true });

const env = {
  ...process.env,
  HOME: home,
  XDG_RUNTIME_DIR: runDir,
  XDG_CONFIG_HOME: path.join(home, ".config"),
  XDG_DATA_HOME: path.join(home, ".local/share"),
  XDG_CACHE_HOME: path.join(home, ".cache"),
  DEVENV_SOCKET: socket,
  DEVENV_DATA_DIR: path.join(tmp, "data"),
  // A daemon the extension starts (Start Daemon) serves its dashboard on a free port.
  DEVENV_DASHBOARD_PORT: "0",
  // ...and its local router too, not the user's 7480 (another daemon may hold it).
  DEVENV_ROUTER_PORT: "0",
  QUICKSTART_DB_PORT: String(dbPort),
  QUICKSTART_API_PORT: String(apiPort),
  QUICKSTART_WEB_PORT: String(webPort),
  // For the suite: how to reach things from inside the extension host.
  DEVENV_TEST_PROJECT: project,
  DEVENV_TEST_API_PORT: String(apiPort),
  DEVENV_TEST_DEVENVD: devenvd,
  DEVENV_TEST_BENCH: bench ? "1" : "",
  DEVENV_TEST_BENCH_OUT: path.join(tmp, "bench.json"),
};

function start(name, cmd, args) {
  const out = fs.openSync(path.join(tmp, `${name}.log`), "a");
  const child = spawn(cmd, args, { env, stdio: ["ignore", out, out], detached: true });
  children.push(child);
  return child;
}

function tailLog(name) {
  try {
    return fs.readFileSync(path.join(tmp, `${name}.log`), "utf8").split("\n").slice(-30).join("\n");
  } catch {
    return "";
  }
}

// --dashboard-port 0: its web dashboard on any free port, not the user's 7420.
const daemon = start("devenvd", devenvd, ["--socket", socket, "--data-dir", env.DEVENV_DATA_DIR, "--dashboard-port", "0"]);
await until("devenvd's socket", 30_000, () => {
  if (daemon.exitCode !== null) fail(`devenvd exited: ${tailLog("devenvd")}`);
  return fs.existsSync(socket);
});

// The packaged .vsix, installed as a user would: the UI test and the autoUp test run
// it (the suite runs the development copy, which takes precedence over it).
const csArgs = ["--user-data-dir", path.join(tmp, "cs-data"), "--extensions-dir", path.join(tmp, "cs-extensions")];
execFileSync(process.execPath, [codeServer, ...csArgs, "--install-extension", path.join(ext, "dist/devenv.vsix")], {
  env,
  stdio: "ignore",
  timeout: 120_000,
});
if (!fs.readdirSync(path.join(tmp, "cs-extensions")).some((d) => d.startsWith("devenv.devenv-"))) {
  fail("code-server --install-extension dist/devenv.vsix installed nothing");
}

start("code-server", process.execPath, [
  codeServer,
  "--auth", "none",
  "--bind-addr", `127.0.0.1:${csPort}`,
  "--disable-telemetry",
  "--disable-update-check",
  "--disable-workspace-trust",
  "--disable-getting-started-override",
  ...csArgs,
]);
const base = `http://127.0.0.1:${csPort}`;
await until("code-server to answer", 60_000, async () => {
  try {
    return (await fetch(`${base}/healthz`)).ok;
  } catch {
    return false;
  }
});
// Quiet settings: no welcome page, no trust prompt, the devenv view visible.
const userSettings = path.join(tmp, "cs-data/User/settings.json");
fs.mkdirSync(path.dirname(userSettings), { recursive: true });
fs.writeFileSync(
  userSettings,
  JSON.stringify({
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "security.workspace.trust.enabled": false,
    "telemetry.telemetryLevel": "off",
    "devenv.cliPath": devenvCli,
  }),
);

const remote = (p) => `vscode-remote://127.0.0.1:${csPort}${p}`;
/** The workbench on the project: with the development copy and its suite, or plain (the installed .vsix). */
function workbenchUrl(withTests) {
  const folder = `${base}/?folder=${encodeURIComponent(project)}`;
  if (!withTests) return folder;
  const payload = [
    ["extensionDevelopmentPath", remote(ext)],
    ["extensionTestsPath", remote(path.join(ext, "dist/test/suite.js"))],
  ];
  return `${folder}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

const b = await chromium.launch({
  executablePath: browser,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let status = 0;
try {
  // --- 1. the suite (or the benchmark) inside the extension host
  if (bench || want("suite")) {
    const page = await b.newPage({ viewport: { width: 1280, height: 800 } });
    // The extension host's console (mocha's report, our lines) is forwarded to the
    // page with a "%c INFO color: ..." prefix; the workbench's own chatter is left out.
    const noise = /Resolving connection token|Resolved connection token|Creating a socket|Updating additional builtin|Service Worker|open-vsx|extensionquery|same-origin iframe|allow-same-origin|Failed to load resource|Long running operations during shutdown/;
    // Printed in order, with mocha's printf-style arguments put in their places.
    let printing = Promise.resolve();
    page.on("console", (m) => {
      const args = Promise.all(m.args().map((a) => a.jsonValue().catch(() => "?")));
      printing = printing.then(async () => {
        let vals = await args;
        if (typeof vals[0] === "string" && vals[0].startsWith("%c")) vals = vals.slice(2);
        const t = vals.length > 0 && typeof vals[0] === "string" ? util.format(...vals) : m.text();
        if (/^[?\s]*$/.test(t)) return; // arguments that could not be read
        if (process.env.DEVENV_TEST_VERBOSE || !noise.test(t)) console.log(`  [host] ${t}`);
      });
    });
    const exit = new Promise((resolve) => {
      void page.exposeFunction("codeAutomationExit", (code) => resolve(code));
    });
    const started = Date.now();
    await page.goto(workbenchUrl(true));
    const code = await Promise.race([
      exit,
      new Promise((r) => setTimeout(() => r("timeout"), 300_000)),
    ]);
    await printing;
    log(`extension host suite finished with ${code} in ${Date.now() - started} ms`);
    if (code !== 0) {
      console.error(tailLog("code-server"));
      fail(`the extension's suite in code-server failed (exit ${code})`);
    }
    await page.close();
  }

  if (bench) {
    const r = JSON.parse(fs.readFileSync(env.DEVENV_TEST_BENCH_OUT, "utf8"));
    console.log(JSON.stringify(r, null, 2));
  } else {
    const cli = (args) =>
      JSON.parse(execFileSync(devenvCli, ["-C", project, ...args, "--json"], { env, encoding: "utf8" }));
    // --- 2. UI: click the inline restart of `api` in the devenv view
    if (want("ui")) {
      const page = await b.newPage({ viewport: { width: 1280, height: 720 } });
      await page.goto(workbenchUrl(false));
      const pidOf = (name) => cli(["status"]).services.find((s) => s.name === name)?.pid;
      await page.locator('.activitybar [aria-label^="devenv"]').first().click({ timeout: 60_000 });
      const row = page.locator('.monaco-list-row[aria-label*="api"]').first();
      await row.waitFor({ timeout: 60_000 });
      await until("the view to show api ready", 60_000, async () =>
        (await row.locator(".codicon-pass-filled").count()) > 0,
      );
      const before = pidOf("api");
      await row.hover();
      await row.locator('.action-label[aria-label="Restart Service"]').click();
      const after = await until("api to run with a new pid after the click", 30_000, () => {
        const s = cli(["status"]).services.find((x) => x.name === "api");
        return s && s.pid !== before && s.state === "ready" ? s.pid : undefined;
      });
      // The row's accessible label carries state and pid: the view caught up.
      await page.locator(`.monaco-list-row[aria-label^="api, ready, pid ${after},"]`).waitFor({ timeout: 30_000 });
      log(`UI: clicking Restart Service on api: pid ${before} -> ${after}, shown in the view`);
      // Open in Browser (the globe) on api: VS Code asks before opening a site other than
      // localhost/127.0.0.1; "Open" hands the URL to the browser, which resolves
      // SERVICE.ENV.localhost to loopback and reaches api through devenvd's local router.
      const apiUrl = cli(["status"]).services.find((s) => s.name === "api")?.url;
      if (!apiUrl) fail("devenv status --json gives api no url (is the router on?)");
      await row.hover();
      const opened = page.context().waitForEvent("page", { timeout: 30_000 });
      await row.locator('.action-label[aria-label="Open in Browser"]').click();
      await page.locator(".monaco-dialog-box .monaco-button", { hasText: /^Open$/ }).first().click({ timeout: 15_000 });
      const tab = await opened;
      await tab.waitForLoadState();
      if (tab.url() !== apiUrl) fail(`Open in Browser opened ${tab.url()}, not ${apiUrl}`);
      const body = await tab.locator("body").innerText();
      if (!body.includes('"service": "api"')) fail(`${apiUrl} did not reach api through the router: ${body.slice(0, 200)}`);
      log(`UI: Open in Browser on api opened ${apiUrl}, answered by api through the router`);
      await tab.close();
      // For the picture: the row hovered, with its inline actions.
      await row.hover();
      fs.mkdirSync(path.dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot });
      log(`screenshot: ${path.relative(repo, screenshot)}`);
      await page.close();
    }

    // --- 3. devenv.autoUp: a workbench opened on the project, down, brings it up
    if (want("autoup")) {
      execFileSync(devenvCli, ["-C", project, "down"], { env, stdio: "ignore", timeout: 60_000 });
      if (cli(["status"]).services.some((s) => s.state === "ready")) fail("down left services ready");
      const settings = JSON.parse(fs.readFileSync(userSettings, "utf8"));
      fs.writeFileSync(userSettings, JSON.stringify({ ...settings, "devenv.autoUp": true }));
      const auto = await b.newPage();
      await auto.goto(workbenchUrl(false));
      await until("autoUp to bring db, api and web up", 60_000, () =>
        cli(["status"]).services.filter((s) => s.state === "ready").length === 3,
      );
      log("autoUp: opening the workspace brought the environment up");
      await auto.close();
    }

    // --- 4. a daemon too old: the message says so, and its action puts the current one in its place
    if (want("too-old")) {
      // autoUp (part 3 turned it on) brings the environment up on the new daemon.
      const withAutoUp = JSON.parse(fs.readFileSync(userSettings, "utf8"));
      fs.writeFileSync(userSettings, JSON.stringify({ ...withAutoUp, "devenv.autoUp": true }));
      execFileSync(devenvCli, ["daemon", "stop"], { env, stdio: "ignore", timeout: 60_000 });
      const old = start("old-daemon", process.execPath, [path.join(here, "old-daemon.mjs"), socket]);
      await until("the old daemon to listen", 30_000, () => {
        if (old.exitCode !== null) fail(`old-daemon.mjs exited: ${tailLog("old-daemon")}`);
        return tailLog("old-daemon").includes("ready");
      });
      const stale = await b.newPage({ viewport: { width: 1280, height: 720 } });
      await stale.goto(workbenchUrl(false));
      const toast = stale.locator(".notification-toast", { hasText: "speaks protocol 0" });
      await toast.waitFor({ timeout: 60_000 });
      const text = (await toast.locator(".notification-list-item-message").textContent()) ?? "";
      for (const phrase of ["devenvd 0.0.1-old", socket, "this extension speaks 1", "the daemon is too old", "devenv daemon stop"]) {
        if (!text.includes(phrase)) fail(`the too-old message does not say "${phrase}": ${text}`);
    }
    const status = stale.locator(".statusbar-item", { hasText: "devenv: not connected" });
    await status.waitFor({ timeout: 10_000 });
    fs.mkdirSync(path.join(ext, ".test-out"), { recursive: true });
    await stale.screenshot({ path: path.join(ext, ".test-out/daemon-too-old.png") });
    log(`too old: "${text}"`);
    await toast.locator(".monaco-button", { hasText: "Restart Daemon" }).click();
    await until("the old daemon to exit (Shutdown)", 30_000, () => old.exitCode !== null);
    // Then the extension starts the current one (`devenv daemon start`).
    const toasts = async () => (await stale.locator(".notification-toast").allTextContents()).join(" | ");
    // It takes 1-2 s; 60 s is for a loaded machine. On failure the notifications, a
    // screenshot and the processes say more.
    const clicked = Date.now();
    const restartedBy = clicked + 60_000;
    const now = await until("a daemon of protocol 1 on the socket", 60_000, async () => {
      const said = await toasts();
      if (/could not (start|stop|connect)/.test(said) || Date.now() > restartedBy - 100) {
        await stale.screenshot({ path: path.join(ext, ".test-out/daemon-restart-failed.png") });
        let procs = "";
        try {
          procs = execFileSync("ps", ["-eo", "pid,ppid,etime,args"], { encoding: "utf8" })
            .split("\n").filter((l) => /devenv|old-daemon/.test(l) && !/\bps\b/.test(l)).join("\n");
        } catch {
          // ps missing: the rest still says something
        }
        fail(
          `Restart Daemon did not start the current daemon; socket ${fs.existsSync(socket) ? "exists" : "is gone"}; ` +
            `notifications: ${said}\nprocesses:\n${procs}`,
        );
      }
      try {
        const v = JSON.parse(execFileSync(devenvCli, ["daemon", "status", "--json"], { env, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
        return v.protocol === 1 ? v : undefined;
      } catch {
        return undefined; // not started yet
      }
    });
    // The new daemon recovers the environment (it was up), and the extension follows it.
    await stale.locator(".statusbar-item", { hasText: "devenv: 3/3 ready" }).waitFor({ timeout: 90_000 });
    log(`too old: Restart Daemon replaced it in ${Date.now() - clicked} ms (old pid ${old.pid}, new ${now.pid}); the status bar shows 3/3 ready`);
    await stale.close();
    }
  }
} catch (e) {
  status = 1;
  console.error(e instanceof Error ? e.stack : e);
  console.error("--- devenvd log\n" + tailLog("devenvd"));
} finally {
  await b.close();
  // Down the example and stop the daemon on the socket (the suite's Start Daemon
  // started one that is not our child), so nothing outlives the test.
  for (const args of [["-C", project, "down"], ["daemon", "stop"]]) {
    try {
      execFileSync(devenvCli, args, { env, stdio: "ignore", timeout: 60_000 });
    } catch {
      // our own devenvd's SIGTERM below stops what is left
    }
  }
  cleanup();
}
process.exit(status || process.exitCode || 0);
