// Wires the parts: the daemon connection, the model fed by Watch streams, the view,
// the status bar, commands, logs and config diagnostics. Nothing polls.
import * as fs from "node:fs";
import * as path from "node:path";

import * as vscode from "vscode";

import * as commands from "./commands";
import { Daemon } from "./daemon";
import { ConfigDiagnostics } from "./diagnostics";
import { Logs } from "./logs";
import { type Environment, Model } from "./model";
import { StatusBar } from "./statusBar";
import { ServicesTree } from "./tree";
import { Watches } from "./watch";

/** What the extension hands to its tests (and to other extensions). */
export interface Api {
  readonly model: Model;
  readonly daemon: Daemon;
  readonly tree: ServicesTree;
  readonly view: vscode.TreeView<unknown>;
  readonly statusBar: StatusBar;
  readonly logs: Logs;
  readonly diagnostics: ConfigDiagnostics;
  /** Milliseconds activate() took. */
  readonly activationMs: number;
  /** Where VS Code writes the log output channels' files (one per channel). */
  readonly logDir: string;
  /** From the start of activate() to the first connection to the daemon (ms). */
  readonly timings: { connectedMs: number | undefined };
}

function setting<T>(key: string, fallback: T): T {
  return vscode.workspace.getConfiguration("devenv").get<T>(key, fallback);
}

/** Workspace folders with a devenv config: the projects to show. */
function projects(): string[] {
  return (vscode.workspace.workspaceFolders ?? [])
    .map((f) => f.uri.fsPath)
    .filter((dir) => ["config.yml", "config.yaml"].some((n) => fs.existsSync(path.join(dir, ".devenv", n))));
}

export function activate(ctx: vscode.ExtensionContext): Api {
  const started = performance.now();
  const model = new Model();
  const daemon = new Daemon(() => setting<string>("socketPath", ""));
  const tree = new ServicesTree(model);
  const view = vscode.window.createTreeView("devenv.services", { treeDataProvider: tree, showCollapseAll: false });
  const statusBar = new StatusBar(model, daemon);
  const logs = new Logs(daemon);
  const diagnostics = new ConfigDiagnostics(model, daemon);
  const watches = new Watches(model, daemon, (env) => { refreshForwards(daemon, model, env); });
  ctx.subscriptions.push(model, daemon, tree, view, statusBar, logs, diagnostics, watches);

  const deps: commands.Deps = { model, daemon, tree, logs, diagnostics, cliPath: () => setting("cliPath", "devenv") };
  commands.register(ctx, deps);

  model.setProjects(projects());
  let autoUpDone = false;
  const timings: { connectedMs: number | undefined } = { connectedMs: undefined };
  ctx.subscriptions.push(
    vscode.workspace.onDidChangeWorkspaceFolders(() => {
      model.setProjects(projects());
    }),
    vscode.workspace.onDidSaveTextDocument((doc) => {
      const env = diagnostics.owner(doc);
      if (env) {
        void diagnostics.validate(env).then(() => {
          watches.kick(env);
        });
      }
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("devenv.socketPath")) daemon.reconnect();
    }),
    daemon.onDidChange((s) => {
      if (s.kind !== "connected") return;
      timings.connectedMs ??= performance.now() - started;
      void diagnostics.validateAll();
      if (!autoUpDone && setting<boolean>("autoUp", false)) {
        autoUpDone = true;
        for (const env of model.environments) void vscode.commands.executeCommand("devenv.up", tree.envNode(env));
      }
    }),
  );
  daemon.connection().catch(async (e: unknown) => {
    // One message at start when nothing listens; later losses show in the status bar.
    if (model.environments.length > 0) {
      await commands.reportError(deps, e);
    }
  });
  return { model, daemon, tree, view, statusBar, logs, diagnostics, logDir: ctx.logUri.fsPath, activationMs: performance.now() - started, timings };
}

/** Forwards of kubernetes services, asked when one becomes ready (not polled). */
function refreshForwards(daemon: Daemon, model: Model, env: Environment): void {
  if (![...env.services.values()].some((s) => s.runtime === "kubernetes")) return;
  void daemon
    .connection()
    .then((c) => c.forwards.list({ environment: env.ref() }))
    .then(({ response }) => {
      env.forwards.clear();
      for (const f of response.forwards) if (!env.forwards.has(f.service)) env.forwards.set(f.service, f.localPort);
      model.setError(env, env.error);
    })
    .catch(() => undefined);
}

export function deactivate(): void {
  // Everything is a disposable on the context.
}
