// The benchmark of docs/benchmarks.md, run inside code-server's extension host by
// `node test/run.mjs --bench`: activation time, and the latency from a daemon state
// change (ServiceStatus.since, stamped by devenvd when the state changes) to the
// moment VS Code asks the extension for the changed tree item to draw it (the devenv
// view is open), over RESTARTS restarts of api (stopping, starting, ready each).
import * as fs from "node:fs";

import { type ServiceStatus, ServiceState, stateName } from "@devenv/api";
import * as vscode from "vscode";

import { extensionApi, theEnv, until } from "./helpers";

const RESTARTS = Number(process.env.DEVENV_BENCH_RESTARTS ?? "100");

function sinceMs(s: ServiceStatus): number {
  return s.since ? s.since.seconds * 1000 + s.since.nanos / 1e6 : 0;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)] ?? NaN;
}

export async function benchmark(): Promise<void> {
  const api = await extensionApi();
  await until("the daemon connection", 30_000, () => api.daemon.current.kind === "connected");
  await vscode.commands.executeCommand("devenv.services.focus");
  const env = theEnv(api);
  const ok = await vscode.commands.executeCommand<boolean>("devenv.up", api.tree.envNode(env));
  if (!ok) throw new Error("up failed");
  await until("3 ready", 30_000, () => api.statusBar.item.text === "devenv: 3/3 ready");

  // State changes as received, keyed by service, state and since (a later update in
  // the same state keeps its since), until each is first drawn.
  const key = (s: ServiceStatus): string => `${s.name}\0${String(s.state)}\0${String(sinceMs(s))}`;
  const changes = new Map<string, number>();
  const last = new Map<string, ServiceState>();
  for (const [n, s] of env.services) last.set(n, s.state);
  const received: number[] = [];
  const latencies: number[] = [];
  const byState = new Map<string, number[]>();
  const subs = [
    api.model.onDidChangeService(({ status }) => {
      if (last.get(status.name) !== status.state) {
        last.set(status.name, status.state);
        changes.set(key(status), sinceMs(status));
        received.push(Date.now() - sinceMs(status));
      }
    }),
    api.tree.onDidRender(({ status }) => {
      const since = changes.get(key(status));
      if (since === undefined) return;
      changes.delete(key(status));
      const ms = Date.now() - since;
      latencies.push(ms);
      const k = stateName(status.state);
      byState.set(k, [...(byState.get(k) ?? []), ms]);
    }),
  ];
  const node = api.tree.serviceNode(env, "api");
  if (!api.view.visible) throw new Error("the devenv view is not visible: nothing would be drawn");
  const started = Date.now();
  for (let i = 0; i < RESTARTS; i++) {
    const before = env.services.get("api")?.pid;
    await vscode.commands.executeCommand("devenv.restartService", node);
    await until("api ready again", 30_000, () => {
      const s = env.services.get("api");
      return s?.state === ServiceState.READY && s.pid !== before;
    });
    // Let the view draw the ready state before the next restart. (A state that
    // lasted less than a frame may never be drawn: VS Code coalesces refreshes; those
    // are counted as superseded.)
    const ready = `api\0${String(ServiceState.READY)}\0`;
    await until("the ready state drawn", 5_000, () => ![...changes.keys()].some((k) => k.startsWith(ready)));
  }
  for (const s of subs) s.dispose();
  const sorted = [...latencies].sort((a, b) => a - b);
  const recv = [...received].sort((a, b) => a - b);
  const result = {
    restarts: RESTARTS,
    seconds: (Date.now() - started) / 1000,
    activationMs: api.activationMs,
    connectedMs: api.timings.connectedMs,
    stateChanges: received.length,
    drawn: latencies.length,
    superseded: changes.size,
    receivedMs: { median: percentile(recv, 50), p99: percentile(recv, 99), max: recv.at(-1) },
    treeUpdatedMs: { median: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1), min: sorted[0] },
    byState: Object.fromEntries(
      [...byState].map(([k, v]) => {
        const s = [...v].sort((a, b) => a - b);
        return [k, { n: s.length, median: percentile(s, 50), p99: percentile(s, 99) }];
      }),
    ),
  };
  console.log(`devenv bench: ${JSON.stringify(result)}`);
  const out = process.env.DEVENV_TEST_BENCH_OUT;
  if (out) fs.writeFileSync(out, JSON.stringify(result, null, 2));
}
