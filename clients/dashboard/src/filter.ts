// The log filter box: what the user typed, turned into LogRequest fields that the
// daemon evaluates over everything it retained (ring and segments).
//   plain text   -> a case-insensitive regex matching that text literally
//   /re/ or /re/i -> that regex (Rust regex syntax, checked by the daemon)
// The since box: "10m", "2h", "30s", "1d", or a date/time the browser parses.

export interface ParsedFilter {
  grep: string;
  error?: string;
}

export function escapeRegex(text: string): string {
  return text.replace(/[\\.*+?()[\]{}|^$#&~-]/g, "\\$&");
}

export function parseFilter(input: string): ParsedFilter {
  const text = input.trim();
  if (text === "") return { grep: "" };
  const re = /^\/(.*)\/([a-z]*)$/s.exec(text);
  if (re) {
    const body = re.at(1) ?? "";
    const flags = re.at(2) ?? "";
    if (body === "") return { grep: "", error: "empty regular expression" };
    for (const f of flags) {
      if (f !== "i") return { grep: "", error: `unknown flag "${f}" (only i is supported)` };
    }
    return { grep: flags.includes("i") ? `(?i)${body}` : body };
  }
  return { grep: `(?i)${escapeRegex(text)}` };
}

const UNITS: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * The instant `input` names, relative to `now` (ms). Undefined for an empty box;
 * an error message for something unreadable.
 */
export function parseSince(input: string, now: number): { at?: number; error?: string } {
  const text = input.trim();
  if (text === "") return {};
  const rel = /^(\d+(?:\.\d+)?)\s*([smhd])$/.exec(text);
  if (rel) {
    const unit = UNITS[rel.at(2) ?? "s"] ?? 1_000;
    return { at: now - Number(rel[1]) * unit };
  }
  const abs = Date.parse(text);
  if (Number.isNaN(abs)) return { error: `cannot read "${text}" as a time: use 10m, 2h, 1d or a date` };
  return { at: abs };
}
