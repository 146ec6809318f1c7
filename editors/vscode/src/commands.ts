// The palette and the view's actions. Each command works from a tree node (inline
// action) or, from the palette, asks which service.
import { spawn } from "node:child_process";

import { type ServiceStatus, ServiceState, stateName, type UpEvent } from "@devenv/api";
import type { ServerStreamingCall } from "@protobuf-ts/runtime-rpc";
import * as vscode from "vscode";

import type { Daemon } from "./daemon";
import type { ConfigDiagnostics } from "./diagnostics";
import type { Logs } from "./logs";
import type { Environment, Model } from "./model";
import { openShell } from "./shell";
import { errorText, NotRunningError } from "./socket";
import { type Node, serviceUrl, type ServicesTree } from "./tree";

export interface Deps {
  readonly model: Model;
  readonly daemon: Daemon;
  readonly tree: ServicesTree;
  readonly logs: Logs;
  readonly diagnostics: ConfigDiagnostics;
  readonly cliPath: () => string;
}

/** Dev mode lasts while its stream is open: one per environment+service. */
const devSessions = new Map<string, AbortController>();

export function register(ctx: vscode.ExtensionContext, d: Deps): void {
  const reg = (id: string, fn: (...args: never[]) => unknown): void => {
    ctx.subscriptions.push(
      vscode.commands.registerCommand(id, async (...args: never[]) => {
        try {
          return await fn(...args);
        } catch (e) {
          await reportError(d, e);
          return undefined;
        }
      }),
    );
  };
  reg("devenv.up", (node?: Node) => up(d, node));
  reg("devenv.down", (node?: Node) => down(d, node));
  reg("devenv.restartService", (node?: Node) => restart(d, node));
  reg("devenv.stopService", (node?: Node) => stop(d, node));
  reg("devenv.startService", (node?: Node) => start(d, node));
  reg("devenv.devMode", (node?: Node) => devMode(d, node, true));
  reg("devenv.devModeOff", (node?: Node) => devMode(d, node, false));
  reg("devenv.showLogs", (node?: Node) => showLogs(d, node));
  reg("devenv.openUrl", (node?: Node) => openUrl(d, node));
  reg("devenv.syncVerify", (node?: Node) => syncVerify(d, node));
  reg("devenv.openDashboard", () => openDashboard(d));
  reg("devenv.startDaemon", () => startDaemon(d));
  reg("devenv.openShell", async (node?: Node) => {
    const target = await pickService(d, node, (s) => !isDown(s.state));
    return target ? openShell(d.daemon, target.env, target.name) : undefined;
  });
  reg("devenv.validate", async (node?: Node) => {
    const env = await pickEnv(d, node);
    if (env) await d.diagnostics.validate(env);
  });
  ctx.subscriptions.push({ dispose: () => { devSessions.forEach((a) => { a.abort(); }); } });
}

/** A clear message; "Start Daemon" when nothing listens or it is too old. */
export async function reportError(d: Deps, e: unknown): Promise<void> {
  const msg = errorText(e);
  if (e instanceof NotRunningError) {
    const pick = await vscode.window.showErrorMessage(`devenv: devenvd is not running (${e.socket}).`, "Start Daemon");
    if (pick === "Start Daemon") await startDaemon(d);
    return;
  }
  // By name: client.ts (and its ProtocolMismatchError) is loaded on the first connect only.
  if (e instanceof Error && e.name === "ProtocolMismatchError") {
    if (!("older" in e && e.older === true)) {
      // A newer daemon: restarting it would not help, updating the extension does.
      await vscode.window.showErrorMessage(`devenv: ${msg}`);
      return;
    }
    const pick = await vscode.window.showErrorMessage(`devenv: ${msg}`, "Restart Daemon");
    if (pick === "Restart Daemon") await restartDaemon(d);
    return;
  }
  await vscode.window.showErrorMessage(`devenv: ${msg}`);
}

async function pickEnv(d: Deps, node?: Node): Promise<Environment | undefined> {
  if (node) return node.env;
  const envs = d.model.environments;
  if (envs.length <= 1) return envs[0];
  const pick = await vscode.window.showQuickPick(
    envs.map((e) => ({ label: e.label, description: e.projectDir, env: e })),
    { placeHolder: "Which environment?" },
  );
  return pick?.env;
}

async function pickService(
  d: Deps,
  node: Node | undefined,
  filter: (s: ServiceStatus) => boolean = () => true,
): Promise<{ env: Environment; name: string } | undefined> {
  if (node?.kind === "service") return { env: node.env, name: node.name };
  const items = d.model.environments.flatMap((env) =>
    [...env.services.values()]
      .filter((s) => (node === undefined || node.env === env) && filter(s))
      .map((s) => ({ label: s.name, description: `${env.label} · ${stateName(s.state)}`, env, name: s.name })),
  );
  if (items.length === 0) {
    await vscode.window.showInformationMessage("devenv: no services to choose from (is the environment up?)");
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(items, { placeHolder: "Which service?" });
  return pick ? { env: pick.env, name: pick.name } : undefined;
}

async function up(d: Deps, node?: Node): Promise<boolean> {
  const env = await pickEnv(d, node);
  if (!env) return false;
  const conn = await d.daemon.connection();
  const call = conn.environments.up({ environment: env.ref(), services: [], keepGoing: false, dev: false, profiles: [] });
  return followUp(d, env, `devenv: up ${env.label}`, call);
}

/** The progress notification of an up (or dev): one line per service as it moves. */
async function followUp(
  d: Deps,
  env: Environment,
  title: string,
  call: ServerStreamingCall<object, UpEvent>,
): Promise<boolean> {
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title, cancellable: false },
    async (progress) => {
      const states = new Map<string, ServiceState>();
      let reported = 0;
      for await (const ev of call.responses) {
        const e = ev.event;
        if (e.oneofKind === "service") {
          const s = e.service;
          states.set(s.name, s.state);
          const ready = [...states.values()].filter((st) => st === ServiceState.READY || st === ServiceState.COMPLETED).length;
          const pct = states.size > 0 ? (100 * ready) / states.size : 0;
          progress.report({
            message: `${s.name}: ${stateName(s.state)}${s.message ? ` (${s.message})` : ""} — ${String(ready)}/${String(states.size)} ready`,
            increment: pct - reported,
          });
          reported = pct;
        } else if (e.oneofKind === "invalid") {
          d.diagnostics.show(env, e.invalid);
          return { ok: false, text: `the config is invalid: ${e.invalid.errors.map((x) => x.message).join("; ")}` };
        } else if (e.oneofKind === "result") {
          return { ok: e.result.ok, text: e.result.message, failed: e.result.failed };
        }
      }
      return { ok: false, text: "the daemon ended the stream without a result" };
    },
  );
  if (result.ok) {
    void vscode.window.showInformationMessage(`devenv: ${env.label}: ${result.text}`);
    return true;
  }
  const first = result.failed?.[0];
  const pick = await vscode.window.showErrorMessage(
    `devenv: ${env.label}: ${result.text}`,
    ...(first !== undefined ? ["Show Logs"] : []),
  );
  if (pick === "Show Logs" && first !== undefined) d.logs.open(env, first).channel.show(true);
  return false;
}

async function down(d: Deps, node?: Node): Promise<void> {
  const env = await pickEnv(d, node);
  if (!env) return;
  const conn = await d.daemon.connection();
  const res = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `devenv: down ${env.label}` },
    async () => (await conn.environments.down({ environment: env.ref(), volumes: false })).response,
  );
  void vscode.window.showInformationMessage(
    `devenv: ${env.label}: stopped ${res.stopped.length > 0 ? res.stopped.join(", ") : "nothing (was not up)"}`,
  );
}

async function restart(d: Deps, node?: Node): Promise<ServiceStatus[] | undefined> {
  const target = await pickService(d, node);
  if (!target) return undefined;
  const conn = await d.daemon.connection();
  const res = await conn.services.restart({ environment: target.env.ref(), services: [target.name] });
  return res.response.services;
}

/** `devenv stop`: stopped until started again; its running dependents wait. */
async function stop(d: Deps, node?: Node): Promise<ServiceStatus[] | undefined> {
  const target = await pickService(d, node, (s) => !isDown(s.state));
  if (!target) return undefined;
  const conn = await d.daemon.connection();
  const res = await conn.services.stop({ environment: target.env.ref(), services: [target.name] });
  return res.response.services;
}

/** `devenv start`: it, what it needs and what waited for it, with an up's progress. */
async function start(d: Deps, node?: Node): Promise<boolean> {
  const target = await pickService(d, node, (s) => isDown(s.state));
  if (!target) return false;
  const conn = await d.daemon.connection();
  const call = conn.services.start({ environment: target.env.ref(), services: [target.name] });
  return followUp(d, target.env, `devenv: start ${target.name}`, call);
}

function isDown(state: ServiceState): boolean {
  return state === ServiceState.STOPPED || state === ServiceState.FAILED || state === ServiceState.COMPLETED;
}

async function devMode(d: Deps, node: Node | undefined, on: boolean): Promise<void> {
  const target = await pickService(d, node, (s) => s.dev !== on && (s.dev || s.runtime === "kubernetes"));
  if (!target) return;
  const key = `${target.env.key}\0${target.name}`;
  if (!on) {
    const session = devSessions.get(key);
    if (!session) {
      await vscode.window.showInformationMessage(
        `devenv: ${target.name} is in dev mode from another client (devenv dev); stop it there`,
      );
      return;
    }
    session.abort();
    devSessions.delete(key);
    return;
  }
  const conn = await d.daemon.connection();
  const abort = new AbortController();
  devSessions.set(key, abort);
  const call = conn.services.dev({ environment: target.env.ref(), services: [target.name] }, { abort: abort.signal });
  // The stream stays open while dev mode lasts; its first part is an up's progress.
  const settled = followUp(d, target.env, `devenv: dev mode for ${target.name}`, call);
  call.responses.onComplete(() => devSessions.delete(key));
  call.responses.onError(() => devSessions.delete(key));
  await settled;
  // The stream stays open while dev mode lasts: keep reading it (what it says is in
  // the Watch stream too), so nothing piles up in its buffer.
  const drain = async (): Promise<void> => {
    const it = call.responses[Symbol.asyncIterator]();
    while (!(await it.next()).done) {
      // drained
    }
  };
  drain().catch(() => undefined);
}

async function showLogs(d: Deps, node?: Node): Promise<void> {
  const target = await pickService(d, node);
  if (!target) return;
  d.logs.open(target.env, target.name).channel.show(true);
}

/** Opens the service's URL in the browser; resolves with the URL opened (for tests). */
async function openUrl(d: Deps, node?: Node): Promise<string | undefined> {
  const target = await pickService(d, node);
  if (!target) return undefined;
  const s = target.env.services.get(target.name);
  const url = s ? serviceUrl(target.env, s) : undefined;
  if (url === undefined) {
    await vscode.window.showInformationMessage(`devenv: ${target.name} has no port to open`);
    return undefined;
  }
  await vscode.env.openExternal(vscode.Uri.parse(url, true));
  return url;
}

async function syncVerify(d: Deps, node?: Node): Promise<void> {
  const env = await pickEnv(d, node);
  if (!env) return;
  const conn = await d.daemon.connection();
  const { response } = await conn.sync.verify({ environment: env.ref(), services: [] });
  if (response.results.length === 0) {
    await vscode.window.showInformationMessage("devenv: no service is in dev mode with sync rules");
    return;
  }
  const bad = response.results.filter((r) => !r.inSync || r.error);
  if (bad.length === 0) {
    await vscode.window.showInformationMessage(`devenv: all ${String(response.results.length)} synced trees match`);
    return;
  }
  const lines = bad.map((r) =>
    r.error
      ? `${r.service} (${r.pod}): ${r.error}`
      : `${r.service} (${r.pod}) ${r.remoteDir}: ${String(r.differenceCount)} differences: ${r.differences.slice(0, 5).join("; ")}`,
  );
  await vscode.window.showWarningMessage(`devenv: out of sync: ${lines.join(" | ")}`);
}

/**
 * The daemon's dashboard (DaemonService.Dashboard: a one-time URL with the
 * per-daemon token), opened in the browser. Returns the URL it opened.
 */
async function openDashboard(d: Deps): Promise<string | undefined> {
  const conn = await d.daemon.connection();
  const { response } = await conn.daemon.dashboard({}, { timeout: 10_000 });
  if (response.url === "") {
    await vscode.window.showErrorMessage(
      `devenv: the dashboard is not served: ${response.error || "this devenvd does not say why"}`,
    );
    return undefined;
  }
  await vscode.env.openExternal(vscode.Uri.parse(response.url, true));
  return response.url;
}

/** `devenv daemon start` with the socket this extension uses; then connect. */
async function startDaemon(d: Deps): Promise<void> {
  const out = await daemonCli(d, "start", "devenv: starting devenvd");
  if (out.code !== 0) {
    await vscode.window.showErrorMessage(`devenv: could not start devenvd: ${out.text.trim()}`);
    return;
  }
  d.daemon.reconnect();
  try {
    await d.daemon.connection();
  } catch (e) {
    // `devenv daemon start` saw it answer, so this is news (its socket gone, another
    // daemon in its place): say so, rather than a silent "not connected".
    await vscode.window.showErrorMessage(
      `devenv: could not connect to the devenvd just started (${out.text.trim()}): ${errorText(e)}`,
    );
  }
}

/**
 * An older daemon on the socket: `devenv daemon stop` (it asks for the pid and calls
 * Shutdown, which every protocol has, and returns once that process has exited, so
 * a daemon slow to leave is waited for), then `devenv daemon start` of the current
 * one. Every failure is shown: this runs from a notification's button, where an
 * exception would go nowhere.
 */
async function restartDaemon(d: Deps): Promise<void> {
  const out = await daemonCli(d, "stop", "devenv: stopping the old devenvd");
  if (out.code !== 0) {
    await vscode.window.showErrorMessage(`devenv: could not stop the old devenvd: ${out.text.trim()}`);
    return;
  }
  await startDaemon(d);
}

/** Runs `devenv daemon VERB` with this extension's socket under a progress notification. */
function daemonCli(d: Deps, verb: "start" | "stop", title: string): Thenable<{ code: number | null; text: string }> {
  const socket = d.daemon.socket;
  const cli = d.cliPath();
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title },
    () =>
      new Promise<{ code: number | null; text: string }>((resolve) => {
        const child = spawn(cli, ["daemon", verb], {
          env: { ...process.env, DEVENV_SOCKET: socket },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let text = "";
        const keep = (b: Buffer): void => {
          text = (text + b.toString()).slice(-4000);
        };
        child.stdout.on("data", keep);
        child.stderr.on("data", keep);
        child.on("error", (e) => {
          resolve({ code: null, text: `${cli}: ${e.message} (set devenv.cliPath to the devenv CLI)` });
        });
        child.on("close", (code) => {
          resolve({ code, text });
        });
      }),
  );
}

