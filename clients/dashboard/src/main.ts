// The devenv dashboard: a thin client of the devenv.v1 API over gRPC-web, served by
// devenvd itself. Layout: a header (environment switcher, connection, environment
// actions), a disconnected banner, tabs (services, dependency graph, sync and
// forwards), the logs panel and the activity panel.
import { environmentKey, environmentRef, ServiceState, type EnvironmentRef, type EnvironmentSummary } from "@devenv/api";
import { Activity } from "./activity";
import { Actions } from "./actions";
import { connect, describe, isAbort, isAborted, isTransportError, type Api } from "./api";
import { Backoff } from "./backoff";
import { Connection } from "./connection";
import { h, replaceChildren } from "./dom";
import { GraphView } from "./graph";
import { LogsPanel } from "./logs";
import { changeLatencies, changeRecords, readyCount, ServicesView } from "./services";
import { SyncForwardsPanel } from "./syncfwd";
import { WorkspacesPanel } from "./workspaces";

type Tab = "services" | "graph" | "syncfwd" | "workspaces";

/** Environments are listed again this often (the API has no stream for the list)... */
const LIST_REFRESH_MS = 15_000;
/** ...and this often while there is none, so a first `devenv up` shows up quickly. */
const LIST_REFRESH_EMPTY_MS = 2_000;
/**
 * A tab hidden this long closes its streams and reopens them when shown again. A
 * browser allows 6 HTTP/1.1 connections per host and each page holds 2 streams, so
 * without this a fourth open tab could not even load.
 */
const HIDDEN_SUSPEND_MS = 10_000;

class App {
  private readonly conn = new Connection();
  private readonly watchBackoff = new Backoff();
  private readonly logsBackoff = new Backoff();
  private readonly activity = new Activity();
  private readonly actions: Actions;
  private readonly services: ServicesView;
  private readonly graph = new GraphView();
  private readonly logs: LogsPanel;
  private readonly syncfwd: SyncForwardsPanel;
  private readonly workspaces: WorkspacesPanel;

  private environments: EnvironmentSummary[] = [];
  private current: EnvironmentRef | null = null;
  private watchAbort: AbortController | null = null;
  private tab: Tab = "services";
  private suspended = false;

  private readonly envSelect: HTMLSelectElement;
  private readonly summary: HTMLSpanElement;
  private readonly volumesBox: HTMLInputElement;
  private readonly watchError: HTMLDivElement;
  private readonly empty: HTMLDivElement;
  private readonly tabButtons = new Map<Tab, HTMLButtonElement>();
  private readonly tabPanels = new Map<Tab, HTMLElement>();

  constructor(private readonly api: Api) {
    this.actions = new Actions(api, this.activity);
    this.services = new ServicesView({
      restart: (name) => { if (this.current) void this.actions.restart(this.current, name); },
      stop: (name) => { if (this.current) void this.actions.stop(this.current, name); },
      start: (name) => { if (this.current) void this.actions.start(this.current, name); },
      toggleDev: (name) => { if (this.current) this.actions.toggleDev(this.current, name); },
      showLogs: (name) => { this.logs.showService(name); },
      holdsDev: (name) => this.actions.holdsDev(name),
    });
    this.services.onFlush = () => { this.afterServicesChange(); };
    this.actions.onDevChange = () => { for (const s of this.services.statuses()) this.services.update(s); };
    this.actions.onEnvironmentsChange = () => { void this.refreshEnvironments(); };
    this.logs = new LogsPanel(api, this.conn, this.logsBackoff);
    this.syncfwd = new SyncForwardsPanel(api);
    this.workspaces = new WorkspacesPanel(api);

    this.envSelect = h("select", { class: "env-select", attrs: { "aria-label": "environment" }, on: { change: () => { this.select(this.envSelect.value); } } });
    this.summary = h("span", { class: "summary" });
    this.volumesBox = h("input", { attrs: { type: "checkbox", "aria-label": "also delete volumes" } });
    this.watchError = h("div", { class: "error-text watch-error", attrs: { hidden: "" } });
    this.empty = h("div", { class: "empty-state", attrs: { hidden: "" } },
      "devenvd knows no environment yet. Run ", h("code", null, "devenv up"), " in a project; it shows up here.");
    this.conn.onChange((s) => {
      if (s === "connected") void this.refreshEnvironments();
    });
  }

  mount(root: HTMLElement): void {
    const envActions = h(
      "div",
      { class: "env-actions" },
      h("button", { attrs: { type: "button", "data-action": "up" }, on: { click: () => { if (this.current) void this.actions.up(this.current); } } }, "Up"),
      h("button", { attrs: { type: "button", "data-action": "down" }, on: { click: () => { if (this.current) void this.actions.down(this.current, this.volumesBox.checked); } } }, "Down"),
      h("label", { title: "down --volumes: also delete volumes and local preset data (asks first)" }, this.volumesBox, " volumes"),
      h("button", { attrs: { type: "button", "data-action": "sync-verify" }, on: { click: () => { if (this.current) void this.actions.syncVerify(this.current); } } }, "Sync verify"),
    );
    const header = h("header", null, h("span", { class: "logo" }, "devenv"), this.envSelect, this.summary, envActions, this.conn.indicator);
    const tabs = h("nav", { class: "tabs", attrs: { role: "tablist" } });
    const addTab = (id: Tab, label: string, panel: HTMLElement): void => {
      const b = h("button", { attrs: { type: "button", role: "tab", "data-tab": id }, on: { click: () => { this.showTab(id); } } }, label);
      this.tabButtons.set(id, b);
      this.tabPanels.set(id, panel);
      tabs.appendChild(b);
    };
    addTab("services", "Services", h("div", { class: "panel services-panel" }, this.watchError, this.empty, this.services.el));
    addTab("graph", "Graph", h("div", { class: "panel" }, this.graph.el));
    addTab("syncfwd", "Sync & forwards", h("div", { class: "panel" }, this.syncfwd.el));
    addTab("workspaces", "Workspaces", h("div", { class: "panel" }, this.workspaces.el));
    const top = h("div", { class: "top" }, tabs, ...this.tabPanels.values());
    replaceChildren(root, header, this.conn.banner, h("main", null, top, this.logs.el), this.activity.el);
    this.showTab("services");

    setInterval(() => { if (this.tab === "services" && !document.hidden) this.services.tick(); }, 1000);
    const relist = (): void => {
      setTimeout(() => {
        if (!document.hidden) void this.refreshEnvironments();
        relist();
      }, this.environments.length === 0 ? LIST_REFRESH_EMPTY_MS : LIST_REFRESH_MS);
    };
    relist();
    const wake = (): void => {
      this.watchBackoff.wake();
      this.logsBackoff.wake();
    };
    window.addEventListener("online", wake);
    let hiddenTimer: ReturnType<typeof setTimeout> | undefined;
    document.addEventListener("visibilitychange", () => {
      clearTimeout(hiddenTimer);
      if (document.hidden) {
        hiddenTimer = setTimeout(() => { this.suspend(); }, HIDDEN_SUSPEND_MS);
      } else {
        this.resume();
        wake();
      }
    });
    void this.refreshEnvironments(true);
  }

  private suspend(): void {
    this.suspended = true;
    this.watchAbort?.abort();
    this.watchAbort = null;
    this.logs.suspend();
  }

  private resume(): void {
    if (!this.suspended) return;
    this.suspended = false;
    if (this.current) {
      const abort = new AbortController();
      this.watchAbort = abort;
      void this.watch(this.current, abort.signal);
    }
    this.logs.resume();
  }

  private showTab(tab: Tab): void {
    this.tab = tab;
    for (const [id, b] of this.tabButtons) {
      b.classList.toggle("active", id === tab);
      b.setAttribute("aria-selected", String(id === tab));
    }
    for (const [id, p] of this.tabPanels) p.hidden = id !== tab;
    this.syncfwd.setVisible(tab === "syncfwd");
    this.workspaces.setVisible(tab === "workspaces");
    if (tab === "graph") this.graph.render(this.services.statuses());
  }

  private async refreshEnvironments(first = false): Promise<void> {
    let list: EnvironmentSummary[];
    try {
      list = (await this.api.env.list({}).response).environments;
      this.conn.ok();
    } catch (e) {
      this.conn.lost(e);
      if (first) {
        // Nothing else runs yet: keep trying until the daemon answers.
        await this.watchBackoff.wait(new AbortController().signal);
        return this.refreshEnvironments(true);
      }
      return;
    }
    this.environments = list;
    const keys = list.map((e) => environmentKey(environmentRef(e)));
    replaceChildren(
      this.envSelect,
      ...list.map((e, i) => h("option", { attrs: { value: keys[i] ?? "" } }, envLabel(e))),
    );
    this.empty.hidden = list.length > 0;
    const want = this.current ? environmentKey(this.current) : decodeURIComponent(/^#env=(.*)$/.exec(location.hash)?.[1] ?? "");
    const pick = keys.includes(want) ? want : (keys.at(Math.max(0, list.findIndex((e) => e.running))) ?? "");
    this.envSelect.value = pick;
    if (!this.current || environmentKey(this.current) !== pick) this.select(pick);
  }

  private select(key: string): void {
    const summary = this.environments.find((e) => environmentKey(environmentRef(e)) === key);
    this.watchAbort?.abort();
    this.watchAbort = null;
    this.services.clear();
    this.current = summary ? environmentRef(summary) : null;
    history.replaceState(null, "", summary ? `#env=${encodeURIComponent(key)}` : "#");
    this.logs.setEnvironment(this.current);
    this.syncfwd.setEnvironment(this.current);
    this.workspaces.setEnvironment(this.current);
    this.afterServicesChange();
    if (this.current) {
      const abort = new AbortController();
      this.watchAbort = abort;
      void this.watch(this.current, abort.signal);
    }
  }

  /** Status (the authoritative set of services), then Watch (its snapshot, then changes); again after any break. */
  private async watch(env: EnvironmentRef, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const status = await this.api.env.status({ environment: env }, { abort: signal }).response;
        this.conn.ok();
        this.watchBackoff.reset();
        this.watchError.hidden = true;
        this.services.reset(status.services);
        this.afterServicesChange();
        const call = this.api.env.watch({ environment: env }, { abort: signal });
        for await (const s of call.responses) {
          this.services.queue(s);
          // The frame that shows this change draws no new log lines (they wait one frame).
          this.logs.view.yieldFrame();
        }
        await call.status;
        if (isAborted(signal)) return;
        this.conn.lost(new Error("devenvd ended the watch stream"));
      } catch (e) {
        if (isAborted(signal) || isAbort(e)) return;
        if (isTransportError(e)) {
          this.conn.lost(e);
        } else {
          this.conn.ok();
          this.watchError.hidden = false;
          this.watchError.textContent = `Cannot watch this environment: ${describe(e)}`;
        }
      }
      await this.watchBackoff.wait(signal);
    }
  }

  private afterServicesChange(): void {
    const list = this.services.statuses();
    this.summary.textContent = this.current ? readyCount(list) : "";
    // The switcher's line for this environment follows the live table, not the last List.
    const current = this.current ? environmentKey(this.current) : "";
    const summary = this.environments.find((e) => environmentKey(environmentRef(e)) === current);
    const option = [...this.envSelect.options].find((o) => o.value === current);
    if (summary && option && list.length > 0) {
      const ready = list.filter((s) => s.state === ServiceState.READY || s.state === ServiceState.COMPLETED).length;
      const running = list.some((s) => s.state !== ServiceState.STOPPED && s.state !== ServiceState.UNSPECIFIED);
      option.textContent = envLabel({ ...summary, ready, services: list.length, running });
    }
    this.logs.setServices(this.services.names());
    if (this.tab === "graph") this.graph.render(list);
    this.syncfwd.poke();
  }
}

function envLabel(e: EnvironmentSummary): string {
  const name = e.env !== "" ? `${e.name} (${e.env})` : e.name;
  return `${name} \u2014 ${String(e.ready)}/${String(e.services)} ready${e.running ? "" : ", stopped"} \u2014 ${e.project}`;
}

const root = document.getElementById("app");
if (root) {
  const app = new App(connect(location.origin));
  app.mount(root);
  // Read by the benchmark (docs/benchmarks.md): state change -> DOM latencies.
  Object.defineProperty(window, "devenvDashboardPerf", { value: { changeLatencies, changeRecords }, enumerable: false });
}
