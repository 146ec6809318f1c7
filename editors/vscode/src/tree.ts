// The "devenv" view: environments -> services, with state icons and a description
// (runtime, ports, restarts, dev). Redrawn per environment on Watch events.
import { type ServiceStatus, ServiceState, stateName } from "@devenv/api";
import * as vscode from "vscode";

import type { Environment, Model } from "./model";

export type Node = EnvNode | ServiceNode | MessageNode;

export interface EnvNode {
  readonly kind: "environment";
  readonly env: Environment;
}

export interface ServiceNode {
  readonly kind: "service";
  readonly env: Environment;
  readonly name: string;
}

export interface MessageNode {
  readonly kind: "message";
  readonly env: Environment;
  readonly text: string;
}

const ICONS: Readonly<Record<ServiceState, [string, string | undefined]>> = {
  [ServiceState.UNSPECIFIED]: ["circle-outline", undefined],
  [ServiceState.PENDING]: ["circle-outline", "disabledForeground"],
  [ServiceState.STARTING]: ["loading~spin", "charts.yellow"],
  [ServiceState.READY]: ["pass-filled", "testing.iconPassed"],
  [ServiceState.UNHEALTHY]: ["warning", "problemsWarningIcon.foreground"],
  [ServiceState.FAILED]: ["error", "testing.iconFailed"],
  [ServiceState.STOPPING]: ["loading~spin", "charts.yellow"],
  [ServiceState.STOPPED]: ["circle-slash", "disabledForeground"],
  [ServiceState.COMPLETED]: ["check", "testing.iconPassed"],
};

export function stateIcon(state: ServiceState): vscode.ThemeIcon {
  const [id, color] = ICONS[state];
  return new vscode.ThemeIcon(id, color === undefined ? undefined : new vscode.ThemeColor(color));
}

/** "local · :8000 · api.shop.localhost:7480 · 2 restarts · dev". */
export function describe(s: ServiceStatus): string {
  const parts = [s.runtime || "?"];
  if (s.ports.length > 0) parts.push(s.ports.map((p) => `:${String(p)}`).join(" "));
  if (s.url !== "") parts.push(urlHost(s.url));
  if (s.restarts > 0) parts.push(`${String(s.restarts)} restart${s.restarts === 1 ? "" : "s"}`);
  if (s.dev) parts.push("dev");
  return parts.join(" · ");
}

/** "api.shop.localhost:7480" for "http://api.shop.localhost:7480/". */
function urlHost(url: string): string {
  return url.replace(/^https?:\/\//, "").replace(/\/$/, "");
}

/**
 * The URL "Open in Browser" opens: the service's name through devenvd's local router
 * (`ServiceStatus.url`), else the forward's local port, else the first port of a
 * local service.
 */
export function serviceUrl(env: Environment, s: ServiceStatus): string | undefined {
  if (s.url !== "") return s.url;
  const forwarded = env.forwards.get(s.name);
  if (forwarded !== undefined) return `http://localhost:${String(forwarded)}/`;
  if (s.runtime === "local" && s.ports.length > 0) return `http://localhost:${String(s.ports[0])}/`;
  return undefined;
}

/** More than VS Code's 200 ms refresh debounce (see ServicesTree.refresh). */
const REFRESH_MS = 210;

export class ServicesTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly envNodes = new Map<string, EnvNode>();
  private readonly serviceNodes = new Map<string, ServiceNode>();
  private readonly subscription: vscode.Disposable;
  private readonly rendered = new vscode.EventEmitter<{ node: ServiceNode; status: ServiceStatus }>();
  /** Fires when VS Code asked for a service's item (it is being drawn): for tests and the benchmark. */
  readonly onDidRender = this.rendered.event;

  private lastFire = 0;
  private pending: Set<Environment> | "all" | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly model: Model) {
    this.subscription = model.onDidChange((env) => {
      this.refresh(env);
    });
  }

  /**
   * VS Code's extension host debounces tree refreshes: the first is drawn at once,
   * later ones only 200 ms after the last of a burst. A restart is a burst (stopping,
   * starting, ready within a few hundred ms), so firing every change put `ready` on
   * screen 200 ms late. Firing at most once per REFRESH_MS keeps each refresh on the
   * debounce's leading edge: a change is drawn at once, or with the next refresh,
   * carrying every change since (measured in docs/benchmarks.md).
   */
  private refresh(env: Environment | undefined): void {
    if (env === undefined) {
      this.pending = "all";
    } else if (this.pending !== "all") {
      this.pending ??= new Set();
      this.pending.add(env);
    }
    if (this.timer) return;
    const wait = this.lastFire + REFRESH_MS - performance.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => { this.flush(); }, wait);
  }

  private flush(): void {
    this.timer = undefined;
    const p = this.pending;
    this.pending = undefined;
    this.lastFire = performance.now();
    if (p === "all" || p === undefined || p.size !== 1) this.changed.fire(undefined);
    else for (const env of p) this.changed.fire(this.envNode(env));
  }

  envNode(env: Environment): EnvNode {
    let n = this.envNodes.get(env.key);
    if (!n) {
      n = { kind: "environment", env };
      this.envNodes.set(env.key, n);
    }
    return n;
  }

  serviceNode(env: Environment, name: string): ServiceNode {
    const key = `${env.key}\0${name}`;
    let n = this.serviceNodes.get(key);
    if (!n) {
      n = { kind: "service", env, name };
      this.serviceNodes.set(key, n);
    }
    return n;
  }

  getChildren(node?: Node): Node[] {
    if (node === undefined) return this.model.environments.map((e) => this.envNode(e));
    if (node.kind !== "environment") return [];
    const env = node.env;
    const children: Node[] = [...env.services.keys()].map((name) => this.serviceNode(env, name));
    if (env.error !== undefined) children.unshift({ kind: "message", env, text: env.error });
    else if (children.length === 0) children.push({ kind: "message", env, text: "not up (devenv: Up)" });
    return children;
  }

  getParent(node: Node): Node | undefined {
    return node.kind === "environment" ? undefined : this.envNode(node.env);
  }

  getTreeItem(node: Node): vscode.TreeItem {
    switch (node.kind) {
      case "environment": {
        const item = new vscode.TreeItem(node.env.label, vscode.TreeItemCollapsibleState.Expanded);
        item.id = `env:${node.env.key}`;
        const ready = [...node.env.services.values()].filter((s) => s.state === ServiceState.READY).length;
        item.description = node.env.services.size > 0 ? `${String(ready)}/${String(node.env.services.size)} ready` : "";
        item.tooltip = node.env.projectDir;
        item.contextValue = "environment";
        item.iconPath = new vscode.ThemeIcon("server-environment");
        return item;
      }
      case "message": {
        const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
        item.iconPath = new vscode.ThemeIcon(node.env.error !== undefined ? "warning" : "info");
        item.tooltip = node.text;
        return item;
      }
      case "service": {
        const s = node.env.services.get(node.name);
        const item = new vscode.TreeItem(node.name, vscode.TreeItemCollapsibleState.None);
        item.id = `svc:${node.env.key}\0${node.name}`;
        if (!s) return item;
        item.description = describe(s);
        item.iconPath = stateIcon(s.state);
        const url = serviceUrl(node.env, s);
        // Dev mode replaces kubernetes workloads; the daemon refuses it for local processes.
        const dev = s.dev ? "dev" : s.runtime === "kubernetes" ? "nodev" : "local";
        // Stop what runs (or waits to), start what does not.
        const down = s.state === ServiceState.STOPPED || s.state === ServiceState.FAILED || s.state === ServiceState.COMPLETED;
        item.contextValue = `service.${dev}.${down ? "down" : "up"}${url !== undefined ? ".url" : ""}`;
        const md = new vscode.MarkdownString();
        md.appendMarkdown(`**${node.name}** — ${stateName(s.state)}`);
        if (s.pid) md.appendMarkdown(` (pid ${String(s.pid)})`);
        if (url !== undefined) md.appendMarkdown(`\n\n[${url}](${url})`);
        if (s.message) md.appendText(`\n\n${s.message}`);
        if (s.lastLines.length > 0) md.appendCodeblock(s.lastLines.join("\n"), "text");
        item.tooltip = md;
        item.accessibilityInformation = {
          label: `${node.name}, ${stateName(s.state)}${s.pid ? `, pid ${String(s.pid)}` : ""}, ${describe(s)}`,
        };
        item.command = { command: "devenv.showLogs", title: "Show Logs", arguments: [node] };
        this.rendered.fire({ node, status: s });
        return item;
      }
    }
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.subscription.dispose();
    this.changed.dispose();
    this.rendered.dispose();
  }
}
