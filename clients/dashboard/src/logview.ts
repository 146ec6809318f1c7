// The virtualized log list: only the rows in (and just around) the viewport exist
// in the DOM, positioned over a spacer as tall as all kept lines, so 50,000 lines
// scroll like 50. Rows are fixed height (no wrapping; long lines scroll sideways)
// and recycled; a row's content is rebuilt only when it shows another entry.
import { LogLevel, LogStream } from "@devenv/api";
import { parseAnsi, type Segment } from "./ansi";
import { h, nameColor, setText } from "./dom";
import { EntryKind, type Entry, type LogBuffer } from "./logbuffer";

export const ROW_HEIGHT = 18;
/** Rows built beyond the viewport, for smooth scrolling by hand... */
const OVERSCAN = 20;
/**
 * ...and while following: the view only moves down, and at 1,000 lines/s each redraw
 * brings more new lines than the view holds, so rows above it would be built and
 * painted only to be scrolled away (measured in docs/benchmarks.md, "Dashboard").
 */
const OVERSCAN_FOLLOWING = 2;
/** New lines are drawn at most this often... */
const DATA_FPS = 15;
/**
 * ...and less often when a redraw costs more: the log view takes at most this share of
 * the main thread (a redraw's script, style, layout and paint, as measured after each
 * one), so a Watch change is never queued behind a run of log frames...
 */
const LOG_SHARE = 0.25;
/** ...but the newest lines still show at least once a second. */
const MAX_DATA_INTERVAL_MS = 1000;

const STREAM_CLASS: Readonly<Record<LogStream, string>> = {
  [LogStream.UNSPECIFIED]: "",
  [LogStream.STDOUT]: "s-out",
  [LogStream.STDERR]: "s-err",
  [LogStream.SYSTEM]: "s-sys",
};

/** Rows are coloured by the line's level (style.css): errors red, warnings amber, debug dim. */
const LEVEL_CLASS: Readonly<Record<LogLevel, string>> = {
  [LogLevel.UNSPECIFIED]: "",
  [LogLevel.TRACE]: " l-trace",
  [LogLevel.DEBUG]: " l-debug",
  [LogLevel.INFO]: " l-info",
  [LogLevel.WARN]: " l-warn",
  [LogLevel.ERROR]: " l-error",
  [LogLevel.FATAL]: " l-fatal",
};

interface PooledRow {
  el: HTMLDivElement;
  /** The entry it shows (-1: none). */
  seq: number;
  /** The position it is placed at (-1: none). */
  idx: number;
}

export interface LogViewOptions {
  showTime: () => boolean;
  /** Called when the user scrolls away from the bottom (follow off) or back to it (on). */
  onFollowChange: (follow: boolean) => void;
}

export class LogView {
  readonly el: HTMLDivElement;
  private readonly spacer: HTMLDivElement;
  private readonly header: HTMLDivElement;
  private pool: PooledRow[] = [];
  private scheduled = false;
  private follow = true;
  /** Sequence number of the entry shown in row 0 of the spacer. */
  private baseSeq = 0;
  /** Last sequence number shown + 1 (the end while following; frozen while paused). */
  private endSeq = 0;
  private paused = false;
  private programmaticScroll = false;
  private rowsBuilt = 0;
  private lastRender = 0;
  private dataTimer: ReturnType<typeof setTimeout> | undefined;
  /** The scheduled redraw is for new lines only (not a scroll, resize or reset). */
  private dataOnly = true;
  /** A service row changed: the next data-only redraw waits one frame (see yieldFrame). */
  private yieldNext = false;
  /** The scheduled redraw already waited a frame for a change. */
  private yielded = false;
  /** What the last redraw cost the main thread, ms (rAF callback to the end of its frame). */
  private frameCost = 0;
  private readonly afterFrame = new MessageChannel();
  private frameStart = 0;
  /**
   * The viewport's height and scroll offset, kept from ResizeObserver and scroll events:
   * render() reads no layout (a read after the frame's DOM writes forces a layout of
   * everything dirty in the middle of the frame).
   */
  private viewHeight = -1;
  private scrollTop = 0;

  constructor(
    private readonly buffer: LogBuffer,
    private readonly opts: LogViewOptions,
  ) {
    this.header = h("div", { class: "log-dropped", attrs: { hidden: "" } });
    this.spacer = h("div", { class: "log-spacer" });
    this.el = h("div", { class: "log-scroll", attrs: { tabindex: "0", role: "log", "aria-live": "off" } }, this.spacer);
    this.el.addEventListener("scroll", () => {
      this.onScroll();
    });
    new ResizeObserver(() => {
      // Layout is clean in a ResizeObserver callback: this read costs nothing.
      this.viewHeight = this.el.clientHeight;
      this.schedule();
    }).observe(this.el);
    this.afterFrame.port1.onmessage = () => {
      this.frameCost = performance.now() - this.frameStart;
    };
  }

  /** A note above the list when lines fell off the page's buffer. */
  get droppedNote(): HTMLDivElement {
    return this.header;
  }

  /** Rows built from scratch since the page loaded (for the benchmark). */
  get rowBuilds(): number {
    return this.rowsBuilt;
  }

  setFollow(on: boolean): void {
    this.follow = on;
    if (on) {
      this.paused = false;
      this.schedule();
    }
  }

  setPaused(on: boolean): void {
    this.paused = on;
    if (!on) this.schedule();
  }

  /** Everything changed (cleared, new filter): redraw from the buffer. */
  reset(): void {
    for (const r of this.pool) r.seq = -1;
    this.baseSeq = this.buffer.first;
    this.endSeq = this.buffer.end;
    this.schedule();
  }

  /** Something changed (scroll, reset): redraw on the next frame. */
  schedule(data = false): void {
    if (!data) this.dataOnly = false;
    if (this.scheduled) return;
    this.scheduled = true;
    this.dataOnly = data;
    requestAnimationFrame(() => {
      this.frame();
    });
  }

  /**
   * A Watch change was just applied to the services table: its frame should show it
   * without a log redraw in it (the next change may be a few ms behind), so new lines
   * wait one frame. Scrolling by hand is never held back.
   */
  yieldFrame(): void {
    this.yieldNext = true;
  }

  private frame(): void {
    // Once per redraw: changes arriving in every frame do not starve the log view.
    if (this.dataOnly && this.yieldNext && !this.yielded) {
      this.yieldNext = false;
      this.yielded = true;
      requestAnimationFrame(() => {
        this.frame();
      });
      return;
    }
    this.yieldNext = false;
    this.yielded = false;
    this.scheduled = false;
    this.dataOnly = true;
    this.frameStart = performance.now();
    this.render();
    // A message posted now is handled after this frame's style, layout and paint.
    this.afterFrame.port2.postMessage(0);
  }

  /**
   * New entries arrived: redraw at most DATA_FPS times a second. A log that grows at
   * thousands of lines a second is read no better at 60 frames than at 15, and each
   * frame costs layout and paint.
   */
  scheduleData(): void {
    if (this.scheduled || this.dataTimer !== undefined) return;
    const interval = Math.min(MAX_DATA_INTERVAL_MS, Math.max(1000 / DATA_FPS, this.frameCost / LOG_SHARE));
    const wait = this.lastRender + interval - performance.now();
    if (wait <= 0) {
      this.schedule(true);
      return;
    }
    this.dataTimer = setTimeout(() => {
      this.dataTimer = undefined;
      this.schedule(true);
    }, wait);
  }

  private onScroll(): void {
    if (this.programmaticScroll) {
      this.programmaticScroll = false;
    } else {
      this.scrollTop = this.el.scrollTop;
      const atBottom = this.el.scrollTop + this.el.clientHeight >= this.el.scrollHeight - ROW_HEIGHT;
      if (atBottom !== this.follow && !this.paused) {
        this.follow = atBottom;
        this.opts.onFollowChange(atBottom);
      }
    }
    this.schedule();
  }

  render(): void {
    const buf = this.buffer;
    // No layout is read here (see viewHeight); the one forced layout is the scroll at
    // the end, after every write, and the frame's own layout then has nothing left.
    if (this.viewHeight < 0) this.viewHeight = this.el.clientHeight;
    const viewHeight = this.viewHeight;
    let top = this.scrollTop;
    let scrollTo: number | undefined;
    if (!this.paused) this.endSeq = buf.end;
    // Lines that fell off the front: keep what the user looks at in place.
    if (buf.first > this.baseSeq) {
      const gone = buf.first - this.baseSeq;
      this.baseSeq = buf.first;
      if (!this.follow) {
        top = Math.max(0, top - gone * ROW_HEIGHT);
        scrollTo = top;
      }
    }
    const count = Math.max(0, this.endSeq - this.baseSeq);
    const height = count * ROW_HEIGHT;
    const following = this.follow && !this.paused;
    if (following) {
      const target = Math.max(0, height - viewHeight);
      if (Math.abs(top - target) > 1) {
        scrollTo = target;
        top = target;
      }
    }

    const overscan = following ? OVERSCAN_FOLLOWING : OVERSCAN;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - overscan);
    const visible = Math.ceil(viewHeight / ROW_HEIGHT) + 2 * overscan;
    // The pool is sized for scrolling by hand, so that the seq -> row mapping stays put.
    const poolSize = Math.ceil(viewHeight / ROW_HEIGHT) + 2 * OVERSCAN;
    const last = Math.min(count, first + visible);
    if (this.pool.length < poolSize) {
      // A taller view: more rows; the seq -> row mapping changes, so all are refilled.
      while (this.pool.length < poolSize) {
        const el = h("div", { class: "log-row" });
        this.spacer.appendChild(el);
        this.pool.push({ el, seq: -1, idx: -1 });
      }
      for (const row of this.pool) row.seq = -1;
    }
    // Each entry has one row (seq modulo the pool size) for as long as it is in view:
    // while following, only the new lines are built; the others only move.
    const n = this.pool.length;
    const wanted = new Set<PooledRow>();
    for (let idx = first; idx < last; idx++) {
      const seq = this.baseSeq + idx;
      const row = this.pool.at(seq % n);
      if (!row) continue;
      wanted.add(row);
      if (row.el.hidden) row.el.hidden = false;
      if (row.idx !== idx) {
        row.idx = idx;
        row.el.style.transform = `translateY(${String(idx * ROW_HEIGHT)}px)`;
      }
      if (row.seq !== seq) {
        row.seq = seq;
        this.fill(row.el, buf.at(seq));
      }
    }
    for (const row of this.pool) {
      if (wanted.has(row) || (row.el.hidden && !row.el.firstChild)) continue;
      // Nothing stale stays in the DOM (find-in-page, screen readers).
      row.el.hidden = true;
      row.el.replaceChildren();
      row.seq = -1;
      row.idx = -1;
    }
    if (this.spacer.style.height !== `${String(height)}px`) this.spacer.style.height = `${String(height)}px`;
    if (scrollTo !== undefined) {
      this.programmaticScroll = true;
      this.el.scrollTop = scrollTo;
      this.scrollTop = scrollTo;
    }
    this.lastRender = performance.now();
    const dropped = buf.evicted;
    if (dropped > 0) {
      // A fixed box (style.css): its text changing is not a layout of the page.
      this.header.hidden = false;
      setText(this.header, `${dropped.toLocaleString("en-US")} older lines are no longer kept in this page (it keeps the last ${buf.capacity.toLocaleString("en-US")}); the filter searches everything the daemon retained.`);
    } else if (!this.header.hidden) {
      this.header.hidden = true;
    }
  }

  private fill(el: HTMLDivElement, e: Entry | undefined): void {
    this.rowsBuilt++;
    el.replaceChildren();
    if (!e) {
      el.className = "log-row";
      return;
    }
    if (e.kind === EntryKind.Skipped) {
      el.className = "log-row log-marker";
      // The daemon says why (retention deleted them before they were read, ...).
      const why = e.text || "the daemon dropped them";
      el.textContent = `\u22ef ${e.count.toLocaleString("en-US")} lines skipped${e.service ? ` of ${e.service}` : ""}: ${why}`;
      return;
    }
    if (e.kind === EntryKind.Note) {
      el.className = "log-row log-note";
      el.textContent = `\u2014 ${e.text}`;
      return;
    }
    el.className = `log-row ${STREAM_CLASS[e.stream]}${LEVEL_CLASS[e.level]}`;
    if (this.opts.showTime()) el.appendChild(h("span", { class: "log-time" }, formatTime(e.time)));
    const svc = h("span", { class: "log-svc", title: e.service }, e.service);
    svc.style.color = nameColor(e.service);
    el.appendChild(svc);
    const text = h("span", { class: "log-text" });
    for (const seg of parseAnsi(e.text)) text.appendChild(segmentNode(seg));
    el.appendChild(text);
  }
}

function segmentNode(seg: Segment): Node {
  const s = seg.style;
  if (s.fg === undefined && s.bg === undefined && !s.bold && !s.dim && !s.italic && !s.underline && !s.inverse) {
    return document.createTextNode(seg.text);
  }
  const span = document.createElement("span");
  span.textContent = seg.text;
  const classes: string[] = [];
  let fg = s.fg;
  let bg = s.bg;
  if (s.inverse) [fg, bg] = [bg ?? 0, fg ?? 7];
  if (typeof fg === "number") classes.push(`fg${String(fg)}`);
  else if (fg !== undefined) span.style.color = fg;
  if (typeof bg === "number") classes.push(`bg${String(bg)}`);
  else if (bg !== undefined) span.style.backgroundColor = bg;
  if (s.bold) classes.push("b");
  if (s.dim) classes.push("dim");
  if (s.italic) classes.push("i");
  if (s.underline) classes.push("u");
  span.className = classes.join(" ");
  return span;
}

export function formatTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
