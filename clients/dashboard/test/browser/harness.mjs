// The world a browser test runs in: a real devenvd and devenv built from this
// workspace, with their own socket, data dir, HOME and free ports; projects copied
// into a temp dir. Nothing here stands in for the daemon.
import { spawn, execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../../../..");
const targetDir = process.env.CARGO_TARGET_DIR ?? join(repoRoot, "target");
export const DEVENVD = process.env.DEVENVD ?? join(targetDir, "debug/devenvd");
export const DEVENV = process.env.DEVENV ?? join(targetDir, "debug/devenv");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

for (const [what, path, fix] of [
  ["devenvd", DEVENVD, "cargo build -p devenvd"],
  ["devenv", DEVENV, "cargo build -p devenv-cli"],
  ["chromium", CHROMIUM, "apt-get install chromium (scripts/install-test-tools.sh)"],
]) {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}: ${fix}`);
}

/** Polls `fn` until it returns a truthy value or `ms` pass; then throws naming `what`. */
export async function until(what, fn, ms = 30_000, every = 100) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${String(ms)} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export async function freePorts(n) {
  const servers = [];
  for (let i = 0; i < n; i++) {
    const s = createServer();
    await new Promise((r) => s.listen(0, "127.0.0.1", r));
    servers.push(s);
  }
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export class World {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "devenv-dashboard-test-"));
    this.home = join(this.dir, "home");
    this.run = join(this.dir, "run");
    this.data = join(this.dir, "data");
    this.socket = join(this.run, "devenvd.sock");
    this.log = join(this.dir, "devenvd.log");
    mkdirSync(this.home);
    mkdirSync(this.run, { mode: 0o700 });
    this.daemon = null;
    this.env = {
      ...process.env,
      HOME: this.home,
      XDG_RUNTIME_DIR: this.run,
      DEVENV_SOCKET: this.socket,
      DEVENV_DATA_DIR: this.data,
      NO_COLOR: "1",
      // The local router on a free port, not the user's 7480 (another daemon may hold it).
      DEVENV_ROUTER_PORT: "0",
    };
  }

  /** Starts devenvd; `port` 0 lets it pick the dashboard port. Resolves when the socket answers. */
  async startDaemon(port = 0) {
    const child = spawn(
      DEVENVD,
      ["--socket", this.socket, "--data-dir", this.data, "--log-file", this.log, "--dashboard-port", String(port)],
      { env: this.env, stdio: ["ignore", "ignore", "pipe"], detached: false },
    );
    let stderr = "";
    child.stderr.on("data", (d) => { stderr = (stderr + d.toString()).slice(-4000); });
    const exited = new Promise((r) => child.on("exit", (code, sig) => r({ code, sig })));
    this.daemon = { child, exited };
    await until("devenvd to answer on its socket", async () => {
      const dead = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 10))]);
      if (dead) throw new Error(`devenvd exited (${JSON.stringify(dead)}): ${stderr}${this.daemonLog()}`);
      const r = await this.devenv(["daemon", "status"], { check: false });
      return r.code === 0;
    }, 30_000, 100);
    return child;
  }

  daemonLog() {
    return existsSync(this.log) ? `\n--- devenvd log (end):\n${readFileSync(this.log, "utf8").slice(-3000)}` : "";
  }

  async killDaemon(signal = "SIGKILL") {
    if (!this.daemon) return;
    const { child, exited } = this.daemon;
    this.daemon = null;
    child.kill(signal);
    await exited;
  }

  /** The dashboard URL with this daemon's token, as `devenv dashboard --no-open --json` prints it. */
  async dashboard() {
    const r = await this.devenv(["dashboard", "--no-open", "--json"]);
    const j = JSON.parse(r.stdout);
    if (!j.url) throw new Error(`devenv dashboard gave no url: ${r.stdout}`);
    return j;
  }

  /** Runs the CLI; rejects on a non-zero exit unless check is false. */
  devenv(args, { cwd = this.dir, env = {}, check = true, timeout = 120_000 } = {}) {
    return new Promise((resolve, reject) => {
      execFile(DEVENV, args, { cwd, env: { ...this.env, ...env }, timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        const r = { code, stdout, stderr };
        if (check && code !== 0) reject(new Error(`devenv ${args.join(" ")} exited ${String(code)}:\n${stdout}\n${stderr}${this.daemonLog()}`));
        else resolve(r);
      });
    });
  }

  /** Copies examples/NAME (or writes `files`) into a project dir of this world. */
  project(name, { example, files = {} } = {}) {
    const dir = join(this.dir, "projects", name);
    if (example) cpSync(join(repoRoot, "examples", example), dir, { recursive: true });
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      writeFileSync(join(dir, rel), text);
    }
    return dir;
  }

  async close() {
    if (this.daemon) {
      await this.killDaemon("SIGTERM");
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
