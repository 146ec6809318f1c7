// The environment's workspaces (WorkspaceService.List: the configured ones of this
// daemon's user) with start and stop. The API has no change stream for workspaces, so
// while this tab is shown the list is read again every few seconds and after an action.
import type { EnvironmentRef, WorkspaceStatus } from "@devenv/api";
import { describe, type Api } from "./api";
import { h, replaceChildren } from "./dom";
import { ago } from "./services";

const REFRESH_MS = 5_000;

export class WorkspacesPanel {
  readonly el: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private readonly error: HTMLDivElement;
  private env: EnvironmentRef | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private visible = false;
  private inFlight = false;
  /** Workspaces with a start or stop under way (it waits for the pod). */
  private readonly busy = new Set<string>();

  constructor(private readonly api: Api) {
    this.body = h("tbody");
    this.error = h("div", { class: "error-text" });
    const head = h("thead", null, h("tr", null, ...["workspace", "owner", "state", "pod", "last activity", "idle stop", "open shells", ""].map((n) => h("th", null, n))));
    this.el = h("section", { class: "workspaces" }, this.error, h("h2", null, "Workspaces"), h("table", { class: "grid workspaces" }, head, this.body));
  }

  setEnvironment(env: EnvironmentRef | null): void {
    this.env = env;
    this.body.replaceChildren();
    this.refreshSoon(0);
  }

  setVisible(on: boolean): void {
    this.visible = on;
    if (on) this.refreshSoon(0);
    else clearTimeout(this.timer);
  }

  private refreshSoon(ms: number): void {
    clearTimeout(this.timer);
    if (!this.visible) return;
    this.timer = setTimeout(() => { void this.refresh(); }, ms);
  }

  private async refresh(): Promise<void> {
    const env = this.env;
    if (!env || this.inFlight) return;
    this.inFlight = true;
    try {
      const list = await this.api.workspace.list({ environment: env, all: false }).response;
      this.error.textContent = "";
      this.render(list.workspaces);
    } catch (e) {
      this.error.textContent = `could not list workspaces: ${describe(e)}`;
    } finally {
      this.inFlight = false;
      this.refreshSoon(REFRESH_MS);
    }
  }

  private async act(name: string, what: "start" | "stop"): Promise<void> {
    const env = this.env;
    if (!env || this.busy.has(name)) return;
    this.busy.add(name);
    this.refreshSoon(0);
    try {
      const req = { environment: env, name };
      await (what === "start" ? this.api.workspace.start(req) : this.api.workspace.stop(req)).response;
      this.error.textContent = "";
    } catch (e) {
      this.error.textContent = `could not ${what} workspace ${name}: ${describe(e)}`;
    } finally {
      this.busy.delete(name);
      this.refreshSoon(0);
    }
  }

  private render(workspaces: readonly WorkspaceStatus[]): void {
    if (workspaces.length === 0) {
      replaceChildren(this.body, h("tr", null, h("td", { class: "empty", attrs: { colspan: "8" } }, "No workspaces: spec.workspaces in the config lists them.")));
      return;
    }
    const now = Date.now();
    const ms = (t: { seconds: number; nanos: number } | undefined): number | null => (t ? t.seconds * 1000 + t.nanos / 1e6 : null);
    replaceChildren(
      this.body,
      ...workspaces.map((w) => {
        const last = ms(w.lastActivityAt);
        const stops = ms(w.stopsAt);
        const busy = this.busy.has(w.name);
        const button = (what: "start" | "stop", enabled: boolean): HTMLButtonElement =>
          h("button", { attrs: { type: "button", "data-action": `workspace-${what}`, "data-workspace": w.name, ...(enabled && !busy ? {} : { disabled: "" }) }, on: { click: () => { void this.act(w.name, what); } } }, what === "start" ? "Start" : "Stop");
        return h(
          "tr",
          { attrs: { "data-workspace": w.name } },
          h("td", null, w.name),
          h("td", null, w.owner),
          h("td", { class: w.state === "running" && w.ready ? "ok" : "" }, busy ? `${w.state}\u2026` : w.state),
          h("td", null, w.pod),
          h("td", null, last !== null ? `${w.lastActivity} ${ago(now - last)} ago` : w.lastActivity),
          h("td", { class: "message", attrs: { title: w.idle } }, stops !== null ? `in ${ago(stops - now)}` : w.idle),
          h("td", { class: "num" }, String(w.openSessions)),
          h("td", null, button("start", w.state === "stopped"), button("stop", w.state === "running" || w.state === "starting")),
        );
      }),
    );
  }
}
