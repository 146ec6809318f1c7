// The page's actions, each the same RPC the CLI uses, with its progress and errors
// shown in the activity panel.
import { stateName, type EnvironmentRef, type UpEvent } from "@devenv/api";
import { describe, isAbort, type Api } from "./api";
import type { Activity, ActivityEntry } from "./activity";
import { h } from "./dom";

export class Actions {
  /** Dev streams this page holds open, by service: dev mode lasts while they do. */
  private readonly devSessions = new Map<string, AbortController>();
  onDevChange: () => void = () => undefined;
  /** Called after an action that changes which environments exist or run. */
  onEnvironmentsChange: () => void = () => undefined;

  constructor(
    private readonly api: Api,
    private readonly activity: Activity,
  ) {}

  holdsDev(name: string): boolean {
    return this.devSessions.has(name);
  }

  async up(env: EnvironmentRef): Promise<void> {
    const entry = this.activity.start(`up ${label(env)}`);
    try {
      const call = this.api.env.up({ environment: env, services: [], keepGoing: false, dev: false, profiles: [] });
      for await (const ev of call.responses) upEvent(entry, ev);
      await call.status;
      if (entry.el.dataset.outcome === "running") entry.finish("failed", "the daemon ended the stream without a result");
    } catch (e) {
      entry.finish("failed", describe(e));
    }
    this.onEnvironmentsChange();
  }

  async down(env: EnvironmentRef, volumes: boolean): Promise<void> {
    if (volumes && !window.confirm(`Stop ${label(env)} and DELETE its volumes and local preset data?\n\nThis cannot be undone.`)) {
      return;
    }
    const entry = this.activity.start(`down${volumes ? " --volumes" : ""} ${label(env)}`);
    try {
      const r = await this.api.env.down({ environment: env, volumes }).response;
      if (r.stopped.length > 0) entry.line(`stopped: ${r.stopped.join(", ")}`);
      if (r.restored.length > 0) entry.line(`restored from dev mode: ${r.restored.join(", ")}`);
      if (r.deleted.length > 0) entry.line(`deleted: ${r.deleted.join(", ")}`);
      if (r.removedData.length > 0) entry.line(`removed data: ${r.removedData.join(", ")}`);
      if (r.keptVolumes.length > 0) entry.line(`kept (down --volumes removes them): ${r.keptVolumes.join(", ")}`);
      if (r.namespaceRemoved !== "") entry.line(`namespace removed: ${r.namespaceRemoved}`);
      entry.finish("ok", r.stopped.length === 0 ? "nothing was running" : `${String(r.stopped.length)} stopped`);
    } catch (e) {
      entry.finish("failed", describe(e));
    }
    this.onEnvironmentsChange();
  }

  async restart(env: EnvironmentRef, service: string): Promise<void> {
    const entry = this.activity.start(`restart ${service}`);
    try {
      const r = await this.api.service.restart({ environment: env, services: [service] }).response;
      for (const s of r.services) entry.line(`${s.name}: ${stateName(s.state)}${s.message !== "" ? ` \u2014 ${s.message}` : ""}`);
      entry.finish("ok", "restarted");
    } catch (e) {
      entry.finish("failed", describe(e));
    }
  }

  /** `devenv stop SERVICE`: stopped until started again; its dependents wait. */
  async stop(env: EnvironmentRef, service: string): Promise<void> {
    const entry = this.activity.start(`stop ${service}`);
    try {
      const r = await this.api.service.stop({ environment: env, services: [service] }).response;
      for (const s of r.services) entry.line(`${s.name}: ${stateName(s.state)}${s.message !== "" ? ` \u2014 ${s.message}` : ""}`);
      entry.finish("ok", "stopped");
    } catch (e) {
      entry.finish("failed", describe(e));
    }
  }

  /** `devenv start SERVICE`: it, what it needs and what waited for it, with progress. */
  async start(env: EnvironmentRef, service: string): Promise<void> {
    const entry = this.activity.start(`start ${service}`);
    try {
      const call = this.api.service.start({ environment: env, services: [service] });
      for await (const ev of call.responses) upEvent(entry, ev, "started");
      await call.status;
      if (entry.el.dataset.outcome === "running") entry.finish("failed", "the daemon ended the stream without a result");
    } catch (e) {
      entry.finish("failed", describe(e));
    }
  }

  /** Dev mode on (a Dev stream held open by this page) or off (that stream closed). */
  toggleDev(env: EnvironmentRef, service: string): void {
    const held = this.devSessions.get(service);
    if (held) {
      held.abort();
      return;
    }
    const abort = new AbortController();
    this.devSessions.set(service, abort);
    this.onDevChange();
    const entry = this.activity.start(`dev ${service}`);
    entry.line("dev mode lasts while this page keeps it on; closing the page ends it and restores the service");
    void (async () => {
      try {
        const call = this.api.service.dev({ environment: env, services: [service] }, { abort: abort.signal });
        for await (const ev of call.responses) upEvent(entry, ev, "dev mode on");
        await call.status;
        entry.finish("failed", "the daemon ended dev mode");
      } catch (e) {
        if (abort.signal.aborted || isAbort(e)) entry.finish("ok", "dev mode off: the service is restored");
        else entry.finish("failed", describe(e));
      } finally {
        this.devSessions.delete(service);
        this.onDevChange();
      }
    })();
  }

  async syncVerify(env: EnvironmentRef): Promise<void> {
    const entry = this.activity.start(`sync verify ${label(env)}`);
    try {
      const r = await this.api.sync.verify({ environment: env, services: [] }).response;
      let bad = 0;
      for (const v of r.results) {
        const where = `${v.service} ${v.pod}:${v.remoteDir} \u2190 ${v.localDir}`;
        if (v.error !== "") {
          bad++;
          entry.line(h("span", { class: "bad" }, "error "), where, ` \u2014 ${v.error}`);
        } else if (!v.inSync) {
          bad++;
          entry.line(h("span", { class: "bad" }, `${String(v.differenceCount)} differences `), where);
          for (const d of v.differences) entry.line(h("span", { class: "indent" }, d));
        } else {
          entry.line(h("span", { class: "ok" }, "in sync "), where);
        }
      }
      if (r.results.length === 0) entry.finish("ok", "no sync sessions (no service is in dev mode with sync rules)");
      else entry.finish(bad === 0 ? "ok" : "failed", bad === 0 ? "everything in sync" : `${String(bad)} not in sync`);
    } catch (e) {
      entry.finish("failed", describe(e));
    }
  }
}

function upEvent(entry: ActivityEntry, ev: UpEvent, okSummary = "everything requested is ready"): void {
  const e = ev.event;
  switch (e.oneofKind) {
    case "service": {
      const s = e.service;
      entry.progressLine(s.name, h("span", { class: `st st-${stateName(s.state)}` }, stateName(s.state)), ` ${s.name}`, s.message !== "" ? ` \u2014 ${s.message}` : "");
      break;
    }
    case "result": {
      const r = e.result;
      if (r.ok) entry.finish("ok", okSummary);
      else entry.finish("failed", r.message !== "" ? r.message : `failed: ${r.failed.join(", ")}`);
      break;
    }
    case "invalid": {
      entry.line("the config is invalid; nothing was started:");
      entry.configErrors(e.invalid.errors);
      if (e.invalid.warnings.length > 0) entry.configErrors(e.invalid.warnings, "warning");
      entry.finish("failed", `${String(e.invalid.errors.length)} config error${e.invalid.errors.length === 1 ? "" : "s"}`);
      break;
    }
    case undefined:
      break;
  }
}

function label(env: EnvironmentRef): string {
  return env.env !== "" ? `${env.projectDir} (${env.env})` : env.projectDir;
}
