import { test } from "node:test";
import assert from "node:assert/strict";
import { load } from "./load.mjs";

const { LogBuffer } = await load("logbuffer.ts");
const line = (text) => ({ kind: 0, time: 0, service: "s", stream: 1, text, count: 0 });

test("keeps the newest `capacity` entries and counts what fell off", () => {
  const b = new LogBuffer(3);
  for (let i = 0; i < 5; i++) b.push(line(String(i)));
  assert.equal(b.length, 3);
  assert.equal(b.evicted, 2);
  assert.equal(b.first, 2);
  assert.equal(b.end, 5);
  assert.equal(b.at(1), undefined);
  assert.deepEqual([b.at(2).text, b.at(3).text, b.at(4).text], ["2", "3", "4"]);
  assert.deepEqual([...b.entries()].map((e) => e.text), ["2", "3", "4"]);
});

test("sequence numbers never repeat across clear", () => {
  const b = new LogBuffer(2);
  b.push(line("a"));
  b.push(line("b"));
  b.clear();
  assert.equal(b.length, 0);
  assert.equal(b.evicted, 0);
  assert.equal(b.first, 2);
  b.push(line("c"));
  assert.equal(b.at(2).text, "c");
  assert.equal(b.at(0), undefined);
});

test("memory stays bounded under 200k pushes", () => {
  const b = new LogBuffer(50_000);
  for (let i = 0; i < 200_000; i++) b.push(line(`line ${String(i)}`));
  assert.equal(b.length, 50_000);
  assert.equal(b.evicted, 150_000);
  assert.equal(b.at(b.end - 1).text, "line 199999");
});
