// The dependency graph: services in columns by depth (a service sits right of
// everything it depends on), edges from dependency to dependent, each node in its
// state's colour. Drawn as SVG built with DOM calls.
import { stateStyle, type ServiceStatus } from "@devenv/api";
import { h } from "./dom";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 170;
const NODE_H = 34;
const COL_GAP = 70;
const ROW_GAP = 14;
const PAD = 16;

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Readonly<Record<string, string | number>>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Column of each service: 0 for no dependencies, else 1 + the deepest dependency. Cycles (refused by validate) are cut. */
export function depths(services: readonly Pick<ServiceStatus, "name" | "dependencies">[]): Map<string, number> {
  const deps = new Map(services.map((s) => [s.name, s.dependencies]));
  const out = new Map<string, number>();
  const visiting = new Set<string>();
  const depth = (name: string): number => {
    const known = out.get(name);
    if (known !== undefined) return known;
    if (visiting.has(name)) return 0;
    visiting.add(name);
    let d = 0;
    for (const dep of deps.get(name) ?? []) if (deps.has(dep)) d = Math.max(d, depth(dep) + 1);
    visiting.delete(name);
    out.set(name, d);
    return d;
  };
  for (const s of services) depth(s.name);
  return out;
}

export class GraphView {
  readonly el: HTMLDivElement;
  private lastKey = "";

  constructor() {
    this.el = h("div", { class: "graph" });
  }

  render(services: readonly ServiceStatus[]): void {
    const key = services.map((s) => `${s.name}:${String(s.state)}:${s.dependencies.join(",")}`).join("|");
    if (key === this.lastKey) return;
    this.lastKey = key;
    if (services.length === 0) {
      this.el.replaceChildren(h("p", { class: "empty" }, "No services."));
      return;
    }
    const depth = depths(services);
    const columns: ServiceStatus[][] = [];
    for (const s of services) {
      const d = depth.get(s.name) ?? 0;
      (columns[d] ??= []).push(s);
    }
    const pos = new Map<string, { x: number; y: number }>();
    let rows = 0;
    columns.forEach((col, c) => {
      col.forEach((s, r) => pos.set(s.name, { x: PAD + c * (NODE_W + COL_GAP), y: PAD + r * (NODE_H + ROW_GAP) }));
      rows = Math.max(rows, col.length);
    });
    const width = PAD * 2 + columns.length * NODE_W + (columns.length - 1) * COL_GAP;
    const height = PAD * 2 + rows * NODE_H + (rows - 1) * ROW_GAP;
    const root = svg("svg", { width, height, viewBox: `0 0 ${String(width)} ${String(height)}`, role: "img", "aria-label": "dependency graph" });
    root.appendChild(svg("defs", {})).appendChild(svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }))
      .appendChild(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "edge-head" }));
    for (const s of services) {
      const to = pos.get(s.name);
      if (!to) continue;
      for (const dep of s.dependencies) {
        const from = pos.get(dep);
        if (!from) continue;
        const x1 = from.x + NODE_W;
        const y1 = from.y + NODE_H / 2;
        const x2 = to.x;
        const y2 = to.y + NODE_H / 2;
        const mid = (x1 + x2) / 2;
        root.appendChild(svg("path", { d: `M ${String(x1)} ${String(y1)} C ${String(mid)} ${String(y1)}, ${String(mid)} ${String(y2)}, ${String(x2)} ${String(y2)}`, class: "edge", "marker-end": "url(#arrow)" }));
      }
    }
    for (const s of services) {
      const p = pos.get(s.name);
      if (!p) continue;
      const style = stateStyle(s.state);
      const g = svg("g", { class: "node", transform: `translate(${String(p.x)} ${String(p.y)})`, "data-service": s.name, "data-state": style.name });
      g.appendChild(svg("title", {}, `${s.name}: ${style.name}${s.message !== "" ? ` \u2014 ${s.message}` : ""}`));
      const rect = svg("rect", { width: NODE_W, height: NODE_H, rx: 6 });
      rect.style.stroke = style.color;
      g.appendChild(rect);
      const icon = svg("text", { x: 10, y: 22, class: "node-icon" }, style.icon);
      icon.style.fill = style.color;
      g.appendChild(icon);
      g.appendChild(svg("text", { x: 28, y: 15, class: "node-name" }, s.name.length > 20 ? `${s.name.slice(0, 19)}\u2026` : s.name));
      g.appendChild(svg("text", { x: 28, y: 28, class: "node-state" }, style.name));
      root.appendChild(g);
    }
    this.el.replaceChildren(root);
  }
}
