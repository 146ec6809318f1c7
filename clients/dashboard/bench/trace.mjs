// Where the measured page's main thread spends its time, from a Chromium trace taken
// over CDP (`Tracing.start` with the DevTools timeline categories), and how much of its
// busy (wall) time it actually ran on a CPU. A task's `dur` is wall time, its `tdur`
// the thread's CPU time over the same span: on a loaded machine the difference is the
// page waiting for a core, not work it does.

import { writeFileSync } from "node:fs";

export const CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8", "toplevel"];

/** Events kept at most (a page as busy as Tilt's emits many): the rest are counted, not kept. */
const MAX_EVENTS = 1_000_000;

/** Event name -> the kind of work it is. Unknown names inside a task count as "other". */
const KIND = new Map([
  ["UpdateLayoutTree", "style"],
  ["RecalculateStyles", "style"],
  ["ParseAuthorStyleSheet", "style"],
  ["Layout", "layout"],
  ["UpdateLayerTree", "layout"],
  ["PrePaint", "paint"],
  ["Paint", "paint"],
  ["PaintImage", "paint"],
  ["Layerize", "paint"],
  ["UpdateLayer", "paint"],
  ["Commit", "paint"],
  ["CompositeLayers", "paint"],
  ["RasterTask", "raster"],
  ["MinorGC", "gc"],
  ["MajorGC", "gc"],
  ["V8.GC_SCAVENGER", "gc"],
  ["V8.GC_MARK_COMPACTOR", "gc"],
  ["V8.GCIncrementalMarking", "gc"],
  ["V8.GCFinalizeMC", "gc"],
  ["BlinkGC.AtomicPhase", "gc"],
  ["BlinkGC.IncrementalMarkingStep", "gc"],
  ["CppGC.IncrementalSweep", "gc"],
  ["ThreadState::performIdleLazySweep", "gc"],
  ["ParseHTML", "parse"],
  ["v8.compile", "parse"],
  ["v8.parseOnBackground", "parse"],
  ["FunctionCall", "script"],
  ["EvaluateScript", "script"],
  ["v8.run", "script"],
  ["v8.callFunction", "script"],
  ["TimerFire", "script"],
  ["FireAnimationFrame", "script"],
  ["EventDispatch", "script"],
  ["XHRReadyStateChange", "script"],
  ["RunMicrotasks", "script"],
  ["V8.Execute", "script"],
  ["HitTest", "layout"],
  ["ScheduleStyleRecalculation", "style"],
  ["InvalidateLayout", "layout"],
]);

/**
 * Summarises a trace's events: the renderer main threads (CrRendererMain) of the
 * processes in `pids` (all renderers when empty). Self time per kind (a Layout inside
 * a FunctionCall counts as layout, the call's remaining time as script), busy wall
 * time and CPU time of the top-level tasks.
 */
export function summarize(events, seconds) {
  const mains = new Set();
  for (const e of events) {
    if (e.ph === "M" && e.name === "thread_name" && e.args?.name === "CrRendererMain") mains.add(`${String(e.pid)}:${String(e.tid)}`);
  }
  const byThread = new Map();
  for (const e of events) {
    if (e.ph !== "X" || typeof e.dur !== "number") continue;
    const key = `${String(e.pid)}:${String(e.tid)}`;
    if (!mains.has(key)) continue;
    let list = byThread.get(key);
    if (!list) byThread.set(key, (list = []));
    list.push(e);
  }
  const self = {};
  const selfCpu = {};
  let wall = 0;
  let cpu = 0;
  let tasks = 0;
  let longTasks = 0;
  let maxTask = 0;
  let maxTaskCpu = 0;
  let longCpuTasks = 0;
  const taskNames = new Set(["RunTask", "ThreadControllerImpl::RunTask", "ThreadPool_RunTask"]);
  // The busiest main thread is the measured page (a browser may hold a spare renderer).
  let best = null;
  for (const [key, list] of byThread) {
    const busy = list.filter((e) => taskNames.has(e.name)).reduce((a, e) => a + e.dur, 0);
    if (!best || busy > best.busy) best = { key, list, busy };
  }
  if (!best) return null;
  const list = best.list.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  // Self time: a stack of open events; each event's time minus its children's.
  const stack = [];
  // Each long task's own make-up: self time (wall, CPU) per event name, so a long task
  // says what it was (a paint, a GC, a stream's messages), not only its length.
  let task = null;
  const long = [];
  const close = (until) => {
    while (stack.length > 0 && stack[stack.length - 1].end <= until) {
      const top = stack.pop();
      if (task) {
        const n = task.names.get(top.e.name) ?? [0, 0];
        n[0] += top.dur - top.direct;
        n[1] += Math.max(0, top.tdur - top.directCpu);
        task.names.set(top.e.name, n);
      }
      if (stack.length > 0) {
        stack[stack.length - 1].direct += top.dur;
        stack[stack.length - 1].directCpu += top.tdur;
      } else if (task) {
        if (task.dur >= 50_000) long.push(task);
        task = null;
      }
      const kind = top.top ? "other" : (KIND.get(top.e.name) ?? null);
      if (kind) {
        self[kind] = (self[kind] ?? 0) + top.dur - top.children;
        selfCpu[kind] = (selfCpu[kind] ?? 0) + Math.max(0, top.tdur - top.childrenCpu);
        if (stack.length > 0) {
          stack[stack.length - 1].children += top.dur;
          stack[stack.length - 1].childrenCpu += top.tdur;
        }
      } else if (stack.length > 0) {
        // An unknown event's time goes to its parent's kind (a wrapper).
        stack[stack.length - 1].children += top.children;
        stack[stack.length - 1].childrenCpu += top.childrenCpu;
      }
    }
  };
  for (const e of list) {
    close(e.ts);
    const top = taskNames.has(e.name) && stack.length === 0;
    if (top) {
      tasks++;
      wall += e.dur;
      cpu += typeof e.tdur === "number" ? e.tdur : 0;
      maxTask = Math.max(maxTask, e.dur);
      maxTaskCpu = Math.max(maxTaskCpu, e.tdur ?? 0);
      if (e.dur >= 50_000) longTasks++;
      if ((e.tdur ?? 0) >= 50_000) longCpuTasks++;
      task = { ts: e.ts, dur: e.dur, tdur: e.tdur ?? 0, names: new Map() };
    }
    stack.push({ e, end: e.ts + e.dur, dur: e.dur, tdur: e.tdur ?? 0, children: 0, childrenCpu: 0, direct: 0, directCpu: 0, top });
  }
  close(Infinity);
  // Over all long tasks: where their time went, by event name (ms, wall and CPU).
  const longNames = new Map();
  for (const t of long) {
    for (const [name, [w, c]] of t.names) {
      const n = longNames.get(name) ?? [0, 0];
      n[0] += w / 1000;
      n[1] += c / 1000;
      longNames.set(name, n);
    }
  }
  const topNames = (m, k) => [...m].sort((a, b) => b[1][0] - a[1][0]).slice(0, k).map(([name, [w, c]]) => ({ name, ms: w, cpuMs: c }));
  const longest = long
    .sort((a, b) => b.dur - a.dur)
    .slice(0, 5)
    .map((t) => ({
      at: t.ts,
      ms: t.dur / 1000,
      cpuMs: t.tdur / 1000,
      names: topNames(new Map([...t.names].map(([name, [w, c]]) => [name, [w / 1000, c / 1000]])), 5),
    }));
  const pct = (us) => (us / 1e6 / seconds) * 100;
  const sorted = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, pct(v)]).sort((a, b) => b[1] - a[1]));
  return {
    thread: best.key,
    tasks,
    longTasks,
    longCpuTasks,
    maxTaskMs: maxTask / 1000,
    maxTaskCpuMs: maxTaskCpu / 1000,
    longest,
    longNames: topNames(longNames, 8),
    busyWall: pct(wall),
    busyCpu: pct(cpu),
    kinds: sorted(self),
    kindsCpu: sorted(selfCpu),
  };
}

/** Records a trace of `page` over `ms` (a CDP session on it) and summarises it. */
export async function traceFor(cdp, ms, out = process.env.BENCH_TRACE_OUT) {
  const events = [];
  let dropped = 0;
  const onData = (d) => {
    for (const e of d.value) {
      if (events.length < MAX_EVENTS) events.push(e);
      else dropped++;
    }
  };
  cdp.on("Tracing.dataCollected", onData);
  await cdp.send("Tracing.start", { transferMode: "ReportEvents", traceConfig: { includedCategories: CATEGORIES, recordMode: "recordContinuously" } });
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, ms));
  const done = new Promise((r) => cdp.once("Tracing.tracingComplete", r));
  await cdp.send("Tracing.end");
  await done;
  cdp.off("Tracing.dataCollected", onData);
  let seconds = (Date.now() - t0) / 1000;
  if (dropped > 0) {
    // Truncated: the time the kept events cover.
    let first = Infinity;
    let last = -Infinity;
    for (const e of events) {
      if (e.ph !== "X" || typeof e.ts !== "number" || e.ts <= 0) continue;
      first = Math.min(first, e.ts);
      last = Math.max(last, e.ts + (e.dur ?? 0));
    }
    if (last > first) seconds = (last - first) / 1e6;
  }
  // The raw events, for chrome://tracing or Perfetto (BENCH_TRACE_OUT=FILE).
  if (out) writeFileSync(out, JSON.stringify({ traceEvents: events }));
  const summary = summarize(events, seconds);
  if (summary) summary.dropped = dropped;
  return summary;
}

/**
 * The CPU ticks (utime + stime) of the main threads of the processes in `pids`: a
 * renderer's main thread (CrRendererMain in a trace) is its process's first thread,
 * tid = pid (Chromium leaves the main thread's name alone, it would rename the process).
 */
export function mainThreadTicks(readFileSync, pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${String(pid)}/task/${String(pid)}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks;
}
