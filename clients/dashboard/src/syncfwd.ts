// Sync sessions (SyncService.Status) and port forwards (ForwardService.List) of the
// environment. Neither has a change stream in the API, so while this tab is shown
// they are read again every few seconds and after each service state change.
import { forwardStateName, type EnvironmentRef, type Forward, type SyncSession } from "@devenv/api";
import { describe, type Api } from "./api";
import { h, replaceChildren } from "./dom";
import { ago } from "./services";

const REFRESH_MS = 5_000;

export class SyncForwardsPanel {
  readonly el: HTMLElement;
  private readonly syncBody: HTMLTableSectionElement;
  private readonly fwdBody: HTMLTableSectionElement;
  private readonly error: HTMLDivElement;
  private env: EnvironmentRef | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private visible = false;
  private inFlight = false;

  constructor(private readonly api: Api) {
    this.syncBody = h("tbody");
    this.fwdBody = h("tbody");
    this.error = h("div", { class: "error-text" });
    const head = (...names: string[]): HTMLTableSectionElement => h("thead", null, h("tr", null, ...names.map((n) => h("th", null, n))));
    this.el = h(
      "section",
      { class: "syncfwd" },
      this.error,
      h("h2", null, "Sync sessions"),
      h("table", { class: "grid sync" }, head("service", "pod", "local \u2192 remote", "phase", "last sync", "latency", "files", "bytes", "deleted", "errors", "last error / notice"), this.syncBody),
      h("h2", null, "Port forwards"),
      h("table", { class: "grid forwards" }, head("service", "local", "remote", "state", "pod", "connections", "active", "in", "out", "reconnects", "last error"), this.fwdBody),
    );
  }

  setEnvironment(env: EnvironmentRef | null): void {
    this.env = env;
    this.syncBody.replaceChildren();
    this.fwdBody.replaceChildren();
    this.refreshSoon(0);
  }

  setVisible(on: boolean): void {
    this.visible = on;
    if (on) this.refreshSoon(0);
    else clearTimeout(this.timer);
  }

  /** Something changed (a service state): read again shortly. */
  poke(): void {
    if (this.visible) this.refreshSoon(300);
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
      const [sync, fwd] = await Promise.all([
        this.api.sync.status({ environment: env }).response,
        this.api.forward.list({ environment: env }).response,
      ]);
      this.error.textContent = "";
      this.renderSync(sync.sessions);
      this.renderForwards(fwd.forwards);
    } catch (e) {
      this.error.textContent = `could not read sync sessions and forwards: ${describe(e)}`;
    } finally {
      this.inFlight = false;
      this.refreshSoon(REFRESH_MS);
    }
  }

  private renderSync(sessions: readonly SyncSession[]): void {
    if (sessions.length === 0) {
      replaceChildren(this.syncBody, h("tr", null, h("td", { class: "empty", attrs: { colspan: "11" } }, "No sync sessions: they run for services in dev mode with dev.sync rules.")));
      return;
    }
    replaceChildren(
      this.syncBody,
      ...sessions.map((s) => {
        const last = s.lastSync ? ago(Date.now() - (s.lastSync.seconds * 1000 + s.lastSync.nanos / 1e6)) + " ago" : "";
        const bad = s.phase === "broken" || s.phase === "source-missing" || s.phase === "retrying";
        return h(
          "tr",
          null,
          h("td", null, s.service),
          h("td", null, s.container !== "" ? `${s.pod}/${s.container}` : s.pod),
          h("td", null, `${s.localDir} \u2192 ${s.remoteDir}`),
          h("td", { class: bad ? "bad" : s.connected ? "ok" : "" }, s.phase),
          h("td", null, last),
          h("td", { class: "num" }, s.lastLatencyMs > 0 ? `${s.lastLatencyMs.toFixed(1)} ms` : ""),
          h("td", { class: "num" }, String(s.files)),
          h("td", { class: "num" }, bytes(s.bytes)),
          h("td", { class: "num" }, String(s.deleted)),
          h("td", { class: s.errors > 0 ? "num bad" : "num" }, String(s.errors)),
          h("td", { class: "message" }, s.lastError !== "" ? s.lastError : s.notice),
        );
      }),
    );
  }

  private renderForwards(forwards: readonly Forward[]): void {
    if (forwards.length === 0) {
      replaceChildren(this.fwdBody, h("tr", null, h("td", { class: "empty", attrs: { colspan: "11" } }, "No port forwards: kubernetes services list them under forward:.")));
      return;
    }
    replaceChildren(
      this.fwdBody,
      ...forwards.map((f) => {
        const state = forwardStateName(f.state);
        return h(
          "tr",
          null,
          h("td", null, f.service),
          h("td", null, h("a", { attrs: { href: `http://127.0.0.1:${String(f.localPort)}/`, target: "_blank", rel: "noopener noreferrer" } }, String(f.localPort))),
          h("td", { class: "num" }, String(f.remotePort)),
          h("td", { class: state === "active" ? "ok" : state === "error" ? "bad" : "" }, state),
          h("td", null, f.pod),
          h("td", { class: "num" }, String(f.connections)),
          h("td", { class: "num" }, String(f.activeConnections)),
          h("td", { class: "num" }, bytes(f.bytesIn)),
          h("td", { class: "num" }, bytes(f.bytesOut)),
          h("td", { class: "num" }, String(f.reconnects)),
          h("td", { class: "message" }, f.lastError),
        );
      }),
    );
  }
}

function bytes(n: number): string {
  if (n < 1024) return `${String(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
