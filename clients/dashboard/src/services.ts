// The services table, fed by the Watch stream: a snapshot, then one ServiceStatus
// per change. Each service has one row whose cells are updated in place, only where
// a value changed, so a change costs a few text nodes however many services exist.
import { ServiceState, stateStyle, type ServiceStatus } from "@devenv/api";
import { h, replaceChildren, setText } from "./dom";

export interface ServiceActions {
  restart(name: string): void;
  stop(name: string): void;
  start(name: string): void;
  toggleDev(name: string): void;
  showLogs(name: string): void;
  /** Whether this page holds a dev session for the service (a Dev stream it opened). */
  holdsDev(name: string): boolean;
}

interface Row {
  tr: HTMLTableRowElement;
  state: HTMLTableCellElement;
  runtime: HTMLTableCellElement;
  since: HTMLTableCellElement;
  ports: HTMLTableCellElement;
  url: HTMLTableCellElement;
  restarts: HTMLTableCellElement;
  exit: HTMLTableCellElement;
  message: HTMLTableCellElement;
  dev: HTMLTableCellElement;
  devButton: HTMLButtonElement;
  stopButton: HTMLButtonElement;
  startButton: HTMLButtonElement;
  last: ServiceStatus | null;
  sinceMs: number;
  /** The `since` its cell's title shows (the title is a locale string, costly to make). */
  titleMs: number;
}

/** Latencies from a state change in the daemon to the row showing it (ms), newest last. */
export const changeLatencies: number[] = [];
/** The same changes: service, state, the daemon's time of it and the row's (ms since the epoch), for the benchmark. */
export const changeRecords: { service: string; state: string; since: number; shown: number }[] = [];
const MAX_SAMPLES = 10_000;

export class ServicesView {
  readonly el: HTMLTableElement;
  private readonly body: HTMLTableSectionElement;
  private readonly rows = new Map<string, Row>();
  private frame = 0;
  /** Called once per frame after changes from the Watch stream were applied. */
  onFlush: () => void = () => undefined;

  /**
   * A change from the Watch stream: its row is updated at once (a state shown for less
   * than a frame is still in the DOM, in order), and what depends on every row (the
   * header's count, the environment's line, the logs' service picker, the graph)
   * follows once in the next frame, however many changes arrived in it: a burst (the
   * stream's snapshot of 300, a restart's stopping/starting/ready) is not 300 passes
   * over all rows.
   */
  queue(s: ServiceStatus): void {
    this.update(s);
    if (this.frame === 0) this.frame = requestAnimationFrame(() => { this.flush(); });
  }

  /** Runs onFlush now, if changes wait for it. */
  flush(): void {
    if (this.frame === 0) return;
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.onFlush();
  }

  constructor(private readonly actions: ServiceActions) {
    // Laid out as blocks (style.css: fixed columns, rows rendered only in view), so the
    // table's roles are stated for assistive technology.
    this.body = h("tbody", { attrs: { role: "rowgroup" } });
    const th = (text: string, title?: string): HTMLTableCellElement => h("th", { attrs: { role: "columnheader" }, ...(title !== undefined ? { title } : {}) }, text);
    this.el = h(
      "table",
      { class: "services", attrs: { role: "table", "aria-label": "services" } },
      h(
        "thead",
        { attrs: { role: "rowgroup" } },
        h(
          "tr",
          { attrs: { role: "row" } },
          th("state"),
          th("service"),
          th("runtime"),
          th("since"),
          th("ports"),
          th("url", "its address through devenvd's local router"),
          th("restarts", "restarts"),
          th("exit", "exit code of the last run"),
          th("message"),
          th("dev"),
          th(""),
        ),
      ),
      this.body,
    );
  }

  names(): string[] {
    return [...this.rows.keys()];
  }

  statuses(): ServiceStatus[] {
    return [...this.rows.values()].flatMap((r) => (r.last ? [r.last] : []));
  }

  /** A full snapshot (Status): rows for services not in it go. */
  reset(list: readonly ServiceStatus[]): void {
    const keep = new Set(list.map((s) => s.name));
    for (const [name, row] of this.rows) {
      if (!keep.has(name)) {
        row.tr.remove();
        this.rows.delete(name);
      }
    }
    for (const s of list) this.update(s);
    // Keep the daemon's order.
    let prev: HTMLTableRowElement | null = null;
    for (const s of list) {
      const row = this.rows.get(s.name);
      if (!row) continue;
      const want: ChildNode | null = prev ? prev.nextSibling : this.body.firstChild;
      if (want !== row.tr) this.body.insertBefore(row.tr, want);
      prev = row.tr;
    }
  }

  clear(): void {
    this.rows.clear();
    this.body.replaceChildren();
  }

  update(s: ServiceStatus): void {
    let row = this.rows.get(s.name);
    if (!row) {
      row = this.createRow(s.name);
      this.rows.set(s.name, row);
      this.body.appendChild(row.tr);
    }
    const prev = row.last;
    row.last = s;
    if (!prev || prev.state !== s.state) {
      const style = stateStyle(s.state);
      row.tr.dataset.state = style.name;
      replaceChildren(row.state, h("span", { class: "state-icon", attrs: { "aria-hidden": "true" } }, style.icon), " ", style.name);
      row.state.style.color = style.color;
      row.state.title = s.ready ? "ready" : style.name;
      if (prev && s.since) {
        const now = Date.now();
        const since = s.since.seconds * 1000 + s.since.nanos / 1e6;
        if (changeLatencies.length >= MAX_SAMPLES) changeLatencies.shift();
        changeLatencies.push(now - since);
        if (changeRecords.length >= MAX_SAMPLES) changeRecords.shift();
        changeRecords.push({ service: s.name, state: style.name, since, shown: now });
      }
    }
    setText(row.runtime, s.runtime);
    row.sinceMs = s.since ? s.since.seconds * 1000 + Math.floor(s.since.nanos / 1e6) : 0;
    this.renderSince(row);
    if (!prev || prev.ports.join(",") !== s.ports.join(",")) {
      replaceChildren(
        row.ports,
        ...s.ports.flatMap((p, i) => {
          const a = h("a", { attrs: { href: `http://127.0.0.1:${String(p)}/`, target: "_blank", rel: "noopener noreferrer" } }, String(p));
          return i === 0 ? [a] : [" ", a];
        }),
      );
    }
    if (!prev || prev.url !== s.url) {
      // The local router's name for it (http://SERVICE.ENV.localhost:PORT/): shown without the scheme.
      replaceChildren(
        row.url,
        s.url !== "" ? h("a", { attrs: { href: s.url, target: "_blank", rel: "noopener noreferrer" } }, s.url.replace(/^https?:\/\//, "").replace(/\/$/, "")) : null,
      );
    }
    setText(row.restarts, s.restarts > 0 ? (s.crashes > 0 ? `${String(s.restarts)} (${String(s.crashes)} crash${s.crashes === 1 ? "" : "es"})` : String(s.restarts)) : "");
    setText(row.exit, s.exitCode === undefined ? "" : String(s.exitCode));
    row.exit.classList.toggle("bad", s.exitCode !== undefined && s.exitCode !== 0);
    const message = s.lastLines.length > 0 ? `${s.message}\n\u2014 last lines:\n${s.lastLines.join("\n")}` : s.message;
    // Degraded: it runs, but a dependency is not fine; its own state stays as its probe says.
    setText(row.message, s.degraded !== "" ? (s.message !== "" ? `${s.degraded}; ${s.message}` : s.degraded) : s.message);
    row.message.classList.toggle("degraded", s.degraded !== "");
    row.tr.classList.toggle("degraded", s.degraded !== "");
    row.message.title = s.degraded !== "" ? `degraded: ${s.degraded}\n${message}` : message;
    setText(row.dev, s.dev ? "dev" : "");
    // Start what does not run, stop what does (or waits to).
    const down = s.state === ServiceState.STOPPED || s.state === ServiceState.FAILED || s.state === ServiceState.COMPLETED;
    row.startButton.hidden = !down;
    row.stopButton.hidden = down;
    // Dev mode replaces kubernetes workloads; the daemon refuses it for other runtimes.
    row.devButton.hidden = s.runtime !== "kubernetes";
    const holds = this.actions.holdsDev(s.name);
    setText(row.devButton, holds ? "Dev off" : "Dev on");
    row.devButton.classList.toggle("active", holds);
  }

  /** Refreshes the relative "since" texts (once a second, from a timer). */
  tick(): void {
    for (const row of this.rows.values()) this.renderSince(row);
  }

  private renderSince(row: Row): void {
    if (row.sinceMs === 0) {
      setText(row.since, "");
      if (row.titleMs !== 0) {
        row.titleMs = 0;
        row.since.title = "";
      }
      return;
    }
    setText(row.since, ago(Date.now() - row.sinceMs));
    if (row.titleMs !== row.sinceMs) {
      row.titleMs = row.sinceMs;
      row.since.title = new Date(row.sinceMs).toLocaleString();
    }
  }

  private createRow(name: string): Row {
    const cell = (cls?: string): HTMLTableCellElement => h("td", { ...(cls ? { class: cls } : {}), attrs: { role: "cell" } });
    const devButton = h("button", { attrs: { type: "button", "data-action": "dev" }, on: { click: () => { this.actions.toggleDev(name); } } }, "Dev on");
    const row: Row = {
      tr: h("tr", { attrs: { role: "row", "data-service": name } }),
      state: cell("state"),
      runtime: cell("runtime"),
      since: cell("since"),
      ports: cell("ports"),
      url: cell("url"),
      restarts: cell("num"),
      exit: cell("num"),
      message: cell("message"),
      dev: cell("dev"),
      devButton,
      stopButton: h("button", { attrs: { type: "button", "data-action": "stop" }, on: { click: () => { this.actions.stop(name); } } }, "Stop"),
      startButton: h("button", { attrs: { type: "button", "data-action": "start", hidden: "" }, on: { click: () => { this.actions.start(name); } } }, "Start"),
      last: null,
      sinceMs: 0,
      titleMs: 0,
    };
    const nameCell = h("td", { class: "name", title: name, attrs: { role: "cell" } }, name);
    const actions = h(
      "td",
      { class: "actions", attrs: { role: "cell" } },
      h("button", { attrs: { type: "button", "data-action": "restart" }, on: { click: () => { this.actions.restart(name); } } }, "Restart"),
      row.stopButton,
      row.startButton,
      devButton,
      h("button", { attrs: { type: "button", "data-action": "logs" }, on: { click: () => { this.actions.showLogs(name); } } }, "Logs"),
    );
    row.tr.append(row.state, nameCell, row.runtime, row.since, row.ports, row.url, row.restarts, row.exit, row.message, row.dev, actions);
    return row;
  }
}

/** "42s", "5m", "3h07m", "2d": seconds only in the first minute, so that the table's once-a-second refresh touches only recently changed rows. */
export function ago(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${String(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${String(m)}m`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${String(hr)}h${String(m % 60).padStart(2, "0")}m`;
  return `${String(Math.floor(hr / 24))}d`;
}

/** "3/4 ready" for the header. */
export function readyCount(list: readonly ServiceStatus[]): string {
  const ok = list.filter((s) => s.state === ServiceState.READY || s.state === ServiceState.COMPLETED).length;
  return `${String(ok)}/${String(list.length)} ready`;
}
