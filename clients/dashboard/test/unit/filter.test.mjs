import { test } from "node:test";
import assert from "node:assert/strict";
import { load } from "./load.mjs";

const { parseFilter, parseSince, escapeRegex } = await load("filter.ts");

test("plain text becomes a literal, case-insensitive regex", () => {
  assert.deepEqual(parseFilter("GET /api?x=1"), { grep: "(?i)GET /api\\?x=1" });
  assert.deepEqual(parseFilter("  "), { grep: "" });
  // Every character Rust's regex treats specially is escaped.
  assert.equal(escapeRegex("a.b*c+d?e(f)g[h]i{j}k|l^m$n#o&p-q~r\\s"), "a\\.b\\*c\\+d\\?e\\(f\\)g\\[h\\]i\\{j\\}k\\|l\\^m\\$n\\#o\\&p\\-q\\~r\\\\s");
});

test("/regex/ and /regex/i pass through", () => {
  assert.deepEqual(parseFilter("/err(or)?\\s+\\d+/"), { grep: "err(or)?\\s+\\d+" });
  assert.deepEqual(parseFilter("/timeout/i"), { grep: "(?i)timeout" });
  assert.equal(parseFilter("/x/g").error, 'unknown flag "g" (only i is supported)');
  assert.equal(parseFilter("//").error, "empty regular expression");
});

test("since: relative durations and dates", () => {
  const now = Date.UTC(2026, 0, 1, 12);
  assert.equal(parseSince("10m", now).at, now - 600_000);
  assert.equal(parseSince("2h", now).at, now - 7_200_000);
  assert.equal(parseSince("1d", now).at, now - 86_400_000);
  assert.equal(parseSince("", now).at, undefined);
  assert.equal(parseSince("2026-01-01T11:00:00Z", now).at, Date.UTC(2026, 0, 1, 11));
  assert.match(parseSince("yesterdayish", now).error, /cannot read/);
});
