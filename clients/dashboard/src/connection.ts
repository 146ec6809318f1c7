// Whether the page can reach devenvd, told honestly: a banner while it can't (and
// why), gone when a stream answers again.
import { describe, isUnauthenticated } from "./api";
import { h } from "./dom";

export type ConnState = "connecting" | "connected" | "disconnected" | "unauthenticated";

export class Connection {
  readonly banner: HTMLDivElement;
  readonly indicator: HTMLSpanElement;
  private state: ConnState = "connecting";
  private lostAt = 0;
  private listeners: ((s: ConnState) => void)[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastError = "";

  constructor() {
    this.banner = h("div", { class: "banner", attrs: { role: "alert", hidden: "" } });
    this.indicator = h("span", { class: "conn conn-connecting", title: "connecting to devenvd" }, "connecting\u2026");
  }

  get current(): ConnState {
    return this.state;
  }

  onChange(fn: (s: ConnState) => void): void {
    this.listeners.push(fn);
  }

  /** A call answered: the daemon is there. */
  ok(): void {
    if (this.state === "connected") return;
    this.set("connected");
  }

  /** A call or stream failed for a reason other than the page cancelling it. */
  lost(e: unknown): void {
    this.lastError = describe(e);
    const next: ConnState = isUnauthenticated(e) ? "unauthenticated" : "disconnected";
    if (this.state !== next) {
      if (this.state === "connected" || this.state === "connecting") this.lostAt = Date.now();
      this.set(next);
    } else {
      this.render();
    }
  }

  private set(s: ConnState): void {
    this.state = s;
    this.render();
    clearInterval(this.timer);
    this.timer = undefined;
    if (s === "disconnected" || s === "unauthenticated") {
      this.timer = setInterval(() => { this.render(); }, 1000);
    }
    for (const fn of this.listeners) fn(s);
  }

  private render(): void {
    const s = this.state;
    this.indicator.className = `conn conn-${s}`;
    this.indicator.textContent = s === "connected" ? "\u25cf connected" : s === "connecting" ? "connecting\u2026" : "\u25cb disconnected";
    this.indicator.title = s === "connected" ? "live: changes arrive as they happen" : this.lastError;
    document.body.classList.toggle("offline", s === "disconnected" || s === "unauthenticated");
    if (s === "connected" || s === "connecting") {
      this.banner.hidden = true;
      return;
    }
    const secs = Math.max(0, Math.round((Date.now() - this.lostAt) / 1000));
    this.banner.hidden = false;
    this.banner.textContent =
      s === "unauthenticated"
        ? "Disconnected: devenvd no longer accepts this page's session (it restarted with new secrets). Run `devenv dashboard` to open the page again."
        : `Disconnected from devenvd for ${String(secs)} s: what you see may be out of date. Reconnecting\u2026 (${this.lastError})`;
  }
}
