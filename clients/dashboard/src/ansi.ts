// ANSI SGR colour codes in log lines, turned into styled segments. Only SGR
// (ESC [ ... m) is interpreted; every other escape sequence is dropped, and the
// text is rendered as text nodes, never as markup.

export interface Style {
  /** 0-15: the palette classes; a CSS colour string for 256-colour and truecolour. */
  fg?: number | string;
  bg?: number | string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  inverse?: boolean;
}

export interface Segment {
  text: string;
  style: Style;
}

// CSI (ESC [ params final), OSC (ESC ] ... BEL/ST) and two-byte escapes.
const ESCAPE = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?/g;

const CUBE = [0, 95, 135, 175, 215, 255];

/** xterm's 256-colour palette entry n (16..255) as a CSS colour. */
function color256(n: number): string {
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${String(v)},${String(v)},${String(v)})`;
  }
  const i = n - 16;
  const r = CUBE[Math.floor(i / 36) % 6] ?? 0;
  const g = CUBE[Math.floor(i / 6) % 6] ?? 0;
  const b = CUBE[i % 6] ?? 0;
  return `rgb(${String(r)},${String(g)},${String(b)})`;
}

/** Parses an extended colour (38/48 ; 5 ; n | 38/48 ; 2 ; r ; g ; b) at codes[i]. */
function extended(codes: number[], i: number): { color: number | string | undefined; used: number } {
  const mode = codes[i + 1];
  if (mode === 5) {
    const n = codes[i + 2] ?? 0;
    return { color: n < 16 ? n : color256(Math.min(255, n)), used: 2 };
  }
  if (mode === 2) {
    const [r, g, b] = [codes[i + 2] ?? 0, codes[i + 3] ?? 0, codes[i + 4] ?? 0].map((v) => Math.min(255, v));
    return { color: `rgb(${String(r)},${String(g)},${String(b)})`, used: 4 };
  }
  return { color: undefined, used: 0 };
}

function applySgr(style: Style, params: string): Style {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number.parseInt(p, 10)));
  let s: Style = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i] ?? 0;
    if (c === 0) s = {};
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 7) s.inverse = true;
    else if (c === 22) s.bold = s.dim = false;
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c === 27) s.inverse = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c === 39) delete s.fg;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c === 49) delete s.bg;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 38 || c === 48) {
      const { color, used } = extended(codes, i);
      if (color !== undefined) {
        if (c === 38) s.fg = color;
        else s.bg = color;
      }
      i += used;
    }
  }
  return s;
}

/** Splits a line into runs of text with their style. A line without escapes is one plain segment. */
export function parseAnsi(line: string): Segment[] {
  if (!line.includes("\x1b")) return [{ text: line, style: {} }];
  const out: Segment[] = [];
  let style: Style = {};
  let last = 0;
  ESCAPE.lastIndex = 0;
  for (let m = ESCAPE.exec(line); m !== null; m = ESCAPE.exec(line)) {
    if (m.index > last) out.push({ text: line.slice(last, m.index), style });
    last = ESCAPE.lastIndex;
    if (m[2] === "m") style = applySgr(style, m.at(1) ?? "");
  }
  if (last < line.length) out.push({ text: line.slice(last), style });
  return out;
}

/** The line without escape sequences (for download and search). */
export function stripAnsi(line: string): string {
  return line.includes("\x1b") ? line.replace(ESCAPE, "") : line;
}
