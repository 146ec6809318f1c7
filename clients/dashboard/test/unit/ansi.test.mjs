import { test } from "node:test";
import assert from "node:assert/strict";
import { load } from "./load.mjs";

const { parseAnsi, stripAnsi } = await load("ansi.ts");

test("a line without escapes is one plain segment", () => {
  assert.deepEqual(parseAnsi("hello <b>world</b>"), [{ text: "hello <b>world</b>", style: {} }]);
});

test("SGR colours, bold and reset", () => {
  const segs = parseAnsi("\x1b[1;31merror\x1b[0m: \x1b[32mok\x1b[39m done");
  assert.deepEqual(segs, [
    { text: "error", style: { bold: true, fg: 1 } },
    { text: ": ", style: {} },
    { text: "ok", style: { fg: 2 } },
    { text: " done", style: {} },
  ]);
});

test("bright, 256-colour and truecolour", () => {
  assert.deepEqual(parseAnsi("\x1b[94ma")[0].style, { fg: 12 });
  assert.deepEqual(parseAnsi("\x1b[38;5;196ma")[0].style, { fg: "rgb(255,0,0)" });
  assert.deepEqual(parseAnsi("\x1b[38;5;3ma")[0].style, { fg: 3 });
  assert.deepEqual(parseAnsi("\x1b[48;2;1;2;3ma")[0].style, { bg: "rgb(1,2,3)" });
  assert.deepEqual(parseAnsi("\x1b[38;5;240ma")[0].style, { fg: "rgb(88,88,88)" });
});

test("other escape sequences are dropped, not shown", () => {
  assert.equal(stripAnsi("\x1b[2K\x1b[1Gprogress \x1b]0;title\x07done"), "progress done");
  assert.deepEqual(parseAnsi("\x1b[2Kx").map((s) => s.text), ["x"]);
});

test("an unterminated escape at the end does not throw", () => {
  assert.deepEqual(parseAnsi("abc\x1b[").map((s) => s.text).join(""), "abc[");
});
