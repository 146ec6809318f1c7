// "devenv: 5/6 ready" in the status bar, red when a service failed; a click focuses
// the view. Follows the model (Watch events) and the daemon's connection.
import * as vscode from "vscode";

import type { Daemon } from "./daemon";
import type { Model } from "./model";

export class StatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  private readonly subscriptions: vscode.Disposable[];

  constructor(
    private readonly model: Model,
    private readonly daemon: Daemon,
  ) {
    this.item = vscode.window.createStatusBarItem("devenv.status", vscode.StatusBarAlignment.Left, 50);
    this.item.name = "devenv";
    this.item.command = "devenv.services.focus";
    this.subscriptions = [model.onDidChange(() => { this.render(); }), daemon.onDidChange(() => { this.render(); })];
    this.render();
    this.item.show();
  }

  render(): void {
    const d = this.daemon.current;
    if (d.kind === "down") {
      this.item.text = "$(debug-disconnect) devenv: not connected";
      this.item.tooltip = d.error.message;
      this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.warningBackground");
      return;
    }
    const c = this.model.counts();
    if (c.total === 0) {
      this.item.text = d.kind === "connecting" ? "$(sync~spin) devenv" : "devenv: not up";
      this.item.tooltip = undefined;
      this.item.backgroundColor = undefined;
      return;
    }
    this.item.text = `${c.failed.length > 0 ? "$(error) " : ""}devenv: ${String(c.ready)}/${String(c.total)} ready`;
    this.item.tooltip = c.failed.length > 0 ? `failed: ${c.failed.join(", ")}` : "all services ready or starting";
    this.item.backgroundColor =
      c.failed.length > 0 ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
    this.item.dispose();
  }
}
