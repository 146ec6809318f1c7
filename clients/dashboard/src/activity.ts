// What the page's actions did: one entry per action (up, down, restart, dev, sync
// verify) with its progress while it runs, then the outcome or the error, the way
// the CLI would print it. Bounded: the oldest entries go.
import type { ConfigError } from "@devenv/api";
import { h, replaceChildren, setText, type Child } from "./dom";

const MAX_ENTRIES = 50;

export type Outcome = "running" | "ok" | "failed";

export class ActivityEntry {
  readonly el: HTMLLIElement;
  private readonly badge: HTMLSpanElement;
  private readonly summary: HTMLSpanElement;
  private readonly details: HTMLDivElement;
  private readonly progress = new Map<string, HTMLDivElement>();

  constructor(title: string) {
    this.badge = h("span", { class: "badge running" }, "running");
    this.summary = h("span", { class: "summary" });
    this.details = h("div", { class: "details" });
    const time = new Date().toLocaleTimeString();
    this.el = h("li", { class: "activity-entry", attrs: { "data-outcome": "running" } },
      h("div", { class: "activity-head" }, this.badge, h("span", { class: "title" }, title), h("span", { class: "time" }, time), this.summary),
      this.details);
  }

  /** A progress line keyed by `key` (a service): replaced when the same key reports again. */
  progressLine(key: string, ...content: Child[]): void {
    let line = this.progress.get(key);
    if (!line) {
      line = h("div", { class: "progress" });
      this.progress.set(key, line);
      this.details.appendChild(line);
    }
    replaceChildren(line, ...content);
  }

  line(...content: Child[]): void {
    this.details.appendChild(h("div", null, ...content));
  }

  /** Config errors located to file:line:col, as `devenv validate` prints them. */
  configErrors(errors: readonly ConfigError[], kind: "error" | "warning" = "error"): void {
    const list = h("ul", { class: `config-errors ${kind}` });
    for (const e of errors) list.appendChild(h("li", null, ...configErrorNodes(e)));
    this.details.appendChild(list);
  }

  finish(outcome: Outcome, summary: string): void {
    this.badge.className = `badge ${outcome}`;
    setText(this.badge, outcome === "ok" ? "ok" : outcome === "failed" ? "failed" : "running");
    this.el.dataset.outcome = outcome;
    setText(this.summary, summary);
  }
}

export function configErrorNodes(e: ConfigError): Child[] {
  const where = e.file === "" ? "" : `${e.file}:${String(e.line)}:${String(e.column)}`;
  return [
    where !== "" ? h("span", { class: "location" }, where) : null,
    where !== "" ? ": " : null,
    e.key !== "" ? h("code", null, e.key) : null,
    e.key !== "" ? ": " : null,
    e.message,
    e.hint !== "" ? h("span", { class: "hint" }, ` (${e.hint})`) : null,
  ];
}

export class Activity {
  readonly el: HTMLElement;
  private readonly list: HTMLOListElement;

  constructor() {
    this.list = h("ol", { class: "activity-list", attrs: { reversed: "" } });
    this.el = h("section", { class: "activity", attrs: { "aria-label": "activity" } }, h("h2", null, "Activity"), this.list);
  }

  start(title: string): ActivityEntry {
    const entry = new ActivityEntry(title);
    this.list.prepend(entry.el);
    while (this.list.children.length > MAX_ENTRIES) this.list.lastElementChild?.remove();
    return entry;
  }
}
