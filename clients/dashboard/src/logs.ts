// The logs panel: one LogService.Stream at a time (merged or one service, with the
// filter evaluated by the daemon over everything it retained), a bounded buffer,
// the virtualized view, and the toolbar (filter, service, since, follow, pause,
// timestamps, clear, download), and a level picker (the daemon filters: warn = warn
// and above; lines are coloured by their level in the view). A stream that breaks is resumed from the last
// line's time, without duplicating lines that share that timestamp.
import { LogLevel, LogStream, logStreamName, type EnvironmentRef, type LogEntry, type LogRequest, Timestamp } from "@devenv/api";
import { describe, isAbort, isAborted, type Api } from "./api";
import { stripAnsi } from "./ansi";
import type { Backoff } from "./backoff";
import type { Connection } from "./connection";
import { h } from "./dom";
import { parseFilter, parseSince } from "./filter";
import { EntryKind, LogBuffer, type Entry } from "./logbuffer";
import { formatTime, LogView } from "./logview";

/** Lines the page keeps; older ones are counted and searchable on the server. */
export const BUFFER_LINES = 50_000;
/** Lines asked for when the stream opens without a filter (the newest of them). */
export const INITIAL_TAIL = 5_000;

/** The level picker: every line, or a level and above. */
const LEVEL_CHOICES: readonly (readonly [LogLevel, string])[] = [
  [LogLevel.UNSPECIFIED, "all levels"],
  [LogLevel.TRACE, "trace+"],
  [LogLevel.DEBUG, "debug+"],
  [LogLevel.INFO, "info+"],
  [LogLevel.WARN, "warn+"],
  [LogLevel.ERROR, "error+"],
  [LogLevel.FATAL, "fatal"],
];

export const LEVEL_NAMES: Readonly<Record<LogLevel, string>> = {
  [LogLevel.UNSPECIFIED]: "",
  [LogLevel.TRACE]: "trace",
  [LogLevel.DEBUG]: "debug",
  [LogLevel.INFO]: "info",
  [LogLevel.WARN]: "warn",
  [LogLevel.ERROR]: "error",
  [LogLevel.FATAL]: "fatal",
};

interface Cursor {
  /** LogEntry.position of the newest line received (0: the daemon sent none):
   * a reconnect resumes right after it, from the daemon's memory or disk. */
  position: number;
  /** Timestamp of the newest line received, as seconds and nanos: the fallback
   * for a daemon that sends no positions. */
  seconds: number;
  nanos: number;
  /** service + line of the lines received at exactly that time. */
  keys: Set<string>;
}

export class LogsPanel {
  readonly el: HTMLElement;
  readonly buffer = new LogBuffer(BUFFER_LINES);
  readonly view: LogView;
  private env: EnvironmentRef | null = null;
  private abort: AbortController | null = null;
  /** The request of the current filter (resumed from the cursor after a break). */
  private base: LogRequest | null = null;
  private cursor: Cursor | null = null;
  private pendingRender = false;
  private services: string[] = [];

  private readonly filterInput: HTMLInputElement;
  private readonly filterError: HTMLSpanElement;
  private readonly serviceSelect: HTMLSelectElement;
  private readonly levelSelect: HTMLSelectElement;
  private readonly sinceInput: HTMLInputElement;
  private readonly followBox: HTMLInputElement;
  private readonly timeBox: HTMLInputElement;
  private readonly pauseButton: HTMLButtonElement;
  private readonly status: HTMLSpanElement;
  private paused = false;
  private received = 0;

  constructor(
    private readonly api: Api,
    private readonly conn: Connection,
    private readonly backoff: Backoff,
  ) {
    this.view = new LogView(this.buffer, {
      showTime: () => this.timeBox.checked,
      onFollowChange: (follow) => {
        this.followBox.checked = follow;
      },
    });
    this.filterInput = h("input", {
      class: "log-filter",
      attrs: { type: "search", placeholder: "filter: text or /regex/ (searched on the daemon)", "aria-label": "log filter" },
      on: { keydown: (e) => { if (e.key === "Enter") this.restart(); } },
    });
    this.filterError = h("span", { class: "error-text" });
    this.serviceSelect = h("select", { attrs: { "aria-label": "log service" }, on: { change: () => { this.restart(); } } });
    this.levelSelect = h(
      "select",
      { class: "log-level-select", attrs: { "aria-label": "log level" }, on: { change: () => { this.restart(); } } },
      ...LEVEL_CHOICES.map(([value, label]) => h("option", { attrs: { value: String(value) } }, label)),
    );
    this.sinceInput = h("input", {
      class: "log-since",
      attrs: { type: "text", placeholder: "since: 10m, 2h", "aria-label": "logs since" },
      on: { keydown: (e) => { if (e.key === "Enter") this.restart(); } },
    });
    this.followBox = h("input", {
      attrs: { type: "checkbox", checked: "" },
      on: { change: () => { this.view.setFollow(this.followBox.checked); } },
    });
    this.timeBox = h("input", {
      attrs: { type: "checkbox", checked: "" },
      on: { change: () => { this.view.reset(); } },
    });
    this.pauseButton = h("button", { attrs: { type: "button" }, on: { click: () => { this.togglePause(); } } }, "Pause");
    this.status = h("span", { class: "log-status" });
    const toolbar = h(
      "div",
      { class: "toolbar" },
      this.filterInput,
      h("button", { attrs: { type: "button" }, on: { click: () => { this.restart(); } } }, "Search"),
      this.serviceSelect,
      this.levelSelect,
      this.sinceInput,
      h("label", null, this.followBox, " follow"),
      this.pauseButton,
      h("label", null, this.timeBox, " time"),
      h("button", { attrs: { type: "button" }, on: { click: () => { this.clear(); } } }, "Clear"),
      h("button", { attrs: { type: "button" }, on: { click: () => { this.download(); } } }, "Download"),
      this.status,
      this.filterError,
    );
    this.el = h("section", { class: "logs", attrs: { "aria-label": "logs" } }, toolbar, this.view.droppedNote, this.view.el);
    this.setServices([]);
  }

  /** Shows the logs of another environment (or none). */
  setEnvironment(env: EnvironmentRef | null): void {
    this.env = env;
    this.restart();
  }

  /** The service names for the service picker. */
  setServices(names: string[]): void {
    if (names.length === this.services.length && names.every((n, i) => n === this.services[i])) return;
    this.services = [...names];
    const current = this.serviceSelect.value;
    this.serviceSelect.replaceChildren(
      h("option", { attrs: { value: "" } }, "all services"),
      ...names.map((n) => h("option", { attrs: { value: n } }, n)),
    );
    this.serviceSelect.value = names.includes(current) ? current : "";
  }

  /** Per-service logs (the services table's "logs" button). */
  showService(name: string): void {
    this.serviceSelect.value = name;
    this.restart();
  }

  /** Shows lines at `level` and above only (UNSPECIFIED: every line). */
  setMinLevel(level: LogLevel): void {
    this.levelSelect.value = String(level);
    this.restart();
  }

  private minLevel(): LogLevel {
    const chosen = this.levelSelect.value;
    return LEVEL_CHOICES.find(([level]) => String(level) === chosen)?.[0] ?? LogLevel.UNSPECIFIED;
  }

  /** Sets the filter box and runs the search (used by tests and the URL). */
  search(text: string): void {
    this.filterInput.value = text;
    this.restart();
  }

  private togglePause(): void {
    this.paused = !this.paused;
    this.pauseButton.textContent = this.paused ? "Resume" : "Pause";
    this.pauseButton.classList.toggle("active", this.paused);
    this.view.setPaused(this.paused);
    if (!this.paused && this.followBox.checked) this.view.setFollow(true);
  }

  private clear(): void {
    this.buffer.clear();
    this.view.reset();
  }

  private download(): void {
    const lines: string[] = [];
    for (const e of this.buffer.entries()) {
      if (e.kind === EntryKind.Line) {
        const level = e.level === LogLevel.UNSPECIFIED ? "" : ` ${LEVEL_NAMES[e.level]}`;
        lines.push(`${new Date(e.time).toISOString()} ${e.service} ${logStreamName(e.stream)}${level} ${stripAnsi(e.text)}`);
      } else if (e.kind === EntryKind.Skipped) {
        lines.push(`# ${String(e.count)} lines skipped${e.text ? ` (${e.text})` : ""}`);
      }
    }
    const blob = new Blob([lines.join("\n") + "\n"], { type: "text/plain" });
    const url = URL.createObjectURL(blob);
    const a = h("a", { attrs: { href: url, download: `devenv-logs-${new Date().toISOString().replace(/[:.]/g, "-")}.txt` } });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => { URL.revokeObjectURL(url); }, 10_000);
  }

  /** Opens the stream again with the toolbar's current filter, from scratch. */
  restart(): void {
    this.abort?.abort();
    this.abort = null;
    this.buffer.clear();
    this.cursor = null;
    this.received = 0;
    this.view.reset();
    this.filterError.textContent = "";
    this.base = null;
    const env = this.env;
    if (!env) {
      this.status.textContent = "";
      return;
    }
    const filter = parseFilter(this.filterInput.value);
    const since = parseSince(this.sinceInput.value, Date.now());
    if (filter.error !== undefined || since.error !== undefined) {
      this.filterError.textContent = filter.error ?? since.error ?? "";
      return;
    }
    const service = this.serviceSelect.value;
    const base: LogRequest = {
      environment: env,
      services: service === "" ? [] : [service],
      follow: true,
      // With a filter or a since, everything the daemon retained that matches (the
      // page keeps the newest BUFFER_LINES); without, the newest INITIAL_TAIL.
      tail: filter.grep !== "" || since.at !== undefined || this.minLevel() !== LogLevel.UNSPECIFIED ? 0 : INITIAL_TAIL,
      grep: filter.grep,
      since: since.at !== undefined ? Timestamp.fromDate(new Date(since.at)) : undefined,
      minLevel: this.minLevel(),
      resumeAfter: 0,
    };
    this.base = base;
    const abort = new AbortController();
    this.abort = abort;
    void this.run(base, abort.signal, false);
  }

  /** Closes the stream, keeping what the page holds (the tab is hidden). */
  suspend(): void {
    if (!this.abort) return;
    this.abort.abort();
    this.abort = null;
    this.status.textContent = "paused while the tab is hidden";
  }

  /** Opens the stream again after suspend(), from the last line held. */
  resume(): void {
    if (this.abort || !this.base || !this.env) return;
    const abort = new AbortController();
    this.abort = abort;
    void this.run(this.base, abort.signal, this.cursor !== null);
  }

  private async run(base: LogRequest, signal: AbortSignal, resumed: boolean): Promise<void> {
    let first = !resumed;
    while (!signal.aborted) {
      const c = this.cursor;
      const req: LogRequest = first || !c
        ? base
        : c.position > 0
          ? { ...base, tail: 0, since: undefined, resumeAfter: c.position }
          : { ...base, tail: 0, since: { seconds: c.seconds, nanos: c.nanos } };
      this.status.textContent = first ? "loading\u2026" : "reconnecting\u2026";
      try {
        const call = this.api.logs.stream(req, { abort: signal });
        let opened = false;
        for await (const entry of call.responses) {
          if (!opened) {
            opened = true;
            this.status.textContent = "";
            if (!first) this.note("reconnected: lines since the last one shown follow");
            first = false;
            this.backoff.reset();
          }
          this.add(entry);
        }
        await call.status;
        if (!opened) {
          this.status.textContent = "";
          first = false;
        }
        if (isAborted(signal)) return;
        // A follow stream that ends: the daemon went away or the environment is gone.
        this.note("log stream ended; reconnecting");
      } catch (e) {
        if (isAborted(signal) || isAbort(e)) return;
        this.conn.lost(e);
        this.status.textContent = `logs: ${describe(e)}`;
      }
      first = first && this.received === 0;
      await this.backoff.wait(signal);
    }
  }

  private add(e: LogEntry): void {
    const ts = e.time ?? { seconds: 0, nanos: 0 };
    const seconds = ts.seconds;
    const nanos = ts.nanos;
    const key = `${e.service}\u0000${e.line}`;
    const c = this.cursor;
    if (e.missed > 0) {
      this.push({ kind: EntryKind.Skipped, time: Date.now(), service: e.service, stream: LogStream.SYSTEM, level: LogLevel.UNSPECIFIED, text: e.line, count: e.missed });
      return;
    }
    if (c && c.position > 0 && e.position > 0) {
      if (e.position <= c.position) return; // seen before a reconnect
      this.cursor = { position: e.position, seconds, nanos, keys: new Set([key]) };
    } else if (c) {
      const cmp = seconds - c.seconds || nanos - c.nanos;
      if (cmp < 0 || (cmp === 0 && c.keys.has(key))) return; // seen before a reconnect
      if (cmp === 0) c.keys.add(key);
      else this.cursor = { position: e.position, seconds, nanos, keys: new Set([key]) };
    } else {
      this.cursor = { position: e.position, seconds, nanos, keys: new Set([key]) };
    }
    this.received++;
    this.push({
      kind: EntryKind.Line,
      time: seconds * 1000 + Math.floor(nanos / 1e6),
      service: e.service,
      stream: e.stream,
      level: e.level,
      text: e.line,
      count: 0,
    });
  }

  private note(text: string): void {
    this.push({ kind: EntryKind.Note, time: Date.now(), service: "", stream: LogStream.SYSTEM, level: LogLevel.UNSPECIFIED, text: `${formatTime(Date.now())} ${text}`, count: 0 });
  }

  private push(entry: Entry): void {
    this.buffer.push(entry);
    if (!this.pendingRender) {
      this.pendingRender = true;
      queueMicrotask(() => {
        this.pendingRender = false;
        this.view.scheduleData();
      });
    }
  }
}
