import { test } from "node:test";
import assert from "node:assert/strict";
import { load } from "./load.mjs";

const { Backoff } = await load("backoff.ts");

test("delays double up to the cap, with at most 20% jitter below", () => {
  const b = new Backoff(100, 1000);
  const d = Array.from({ length: 8 }, () => b.next());
  const bases = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
  d.forEach((ms, i) => {
    assert.ok(ms <= bases[i] && ms >= bases[i] * 0.8, `delay ${String(i)}: ${String(ms)} for base ${String(bases[i])}`);
  });
  b.reset();
  assert.ok(b.next() <= 100);
});

test("wake() ends a wait at once", async () => {
  const b = new Backoff(60_000, 60_000);
  const started = Date.now();
  const waiting = b.wait(new AbortController().signal);
  b.wake();
  await waiting;
  assert.ok(Date.now() - started < 1000);
});

test("abort ends a wait at once", async () => {
  const b = new Backoff(60_000, 60_000);
  const ac = new AbortController();
  const waiting = b.wait(ac.signal);
  ac.abort();
  await waiting;
});
