// The benchmark's trace summary (bench/trace.mjs): self time per kind of work, in wall
// and CPU time, on the renderer's main thread only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { summarize } from "../../bench/trace.mjs";

const main = { pid: 1, tid: 1 };
const other = { pid: 1, tid: 2 };
const x = (thread, name, ts, dur, tdur) => ({ ph: "X", ...thread, name, ts, dur, tdur });

test("self time per kind: a layout inside a script call counts as layout, the call's rest as script", () => {
  const events = [
    { ph: "M", name: "thread_name", ...main, args: { name: "CrRendererMain" } },
    { ph: "M", name: "thread_name", ...other, args: { name: "Compositor" } },
    x(main, "RunTask", 0, 10_000, 5_000),
    x(main, "FunctionCall", 1_000, 5_000, 3_000),
    x(main, "Layout", 2_000, 2_000, 1_000),
    x(main, "Paint", 7_000, 2_000, 500),
    x(main, "RunTask", 20_000, 60_000, 55_000),
    x(other, "RunTask", 0, 500_000, 500_000),
  ];
  const s = summarize(events, 1);
  assert.ok(s);
  assert.equal(s.tasks, 2);
  // % of one second: 1,000 us = 0.1 %.
  const near = (got, want, what) => assert.ok(Math.abs(got - want) < 1e-9, `${what}: ${String(got)} != ${String(want)}`);
  near(s.busyWall, 7, "busy wall");
  near(s.busyCpu, 6, "busy cpu");
  near(s.kinds.script, 0.3, "script wall");
  near(s.kinds.layout, 0.2, "layout wall");
  near(s.kinds.paint, 0.2, "paint wall");
  near(s.kinds.other, 0.3 + 6, "the tasks' own time");
  near(s.kindsCpu.script, 0.2, "script cpu");
  near(s.kindsCpu.layout, 0.1, "layout cpu");
  near(s.kindsCpu.paint, 0.05, "paint cpu");
  assert.equal(s.longTasks, 1);
  assert.equal(s.longCpuTasks, 1);
  assert.equal(s.maxTaskMs, 60);
});

test("a long task's make-up: self time per event name, wall and CPU", () => {
  const events = [
    { ph: "M", name: "thread_name", ...main, args: { name: "CrRendererMain" } },
    x(main, "RunTask", 0, 100_000, 30_000),
    x(main, "Layout", 10_000, 60_000, 20_000),
    x(main, "Paint", 80_000, 10_000, 5_000),
    x(main, "RunTask", 200_000, 10_000, 10_000),
    x(main, "Layout", 201_000, 9_000, 9_000),
  ];
  const s = summarize(events, 1);
  assert.ok(s);
  assert.equal(s.longest.length, 1, "only the task over 50 ms");
  assert.equal(s.longest[0].ms, 100);
  assert.equal(s.longest[0].cpuMs, 30);
  assert.deepEqual(s.longest[0].names, [
    { name: "Layout", ms: 60, cpuMs: 20 },
    { name: "RunTask", ms: 30, cpuMs: 5 },
    { name: "Paint", ms: 10, cpuMs: 5 },
  ]);
  assert.deepEqual(s.longNames.map((n) => n.name), ["Layout", "RunTask", "Paint"], "the short task's layout is not counted");
});

test("no renderer main thread: no summary", () => {
  assert.equal(summarize([{ ph: "X", pid: 1, tid: 1, name: "RunTask", ts: 0, dur: 1 }], 1), null);
});
