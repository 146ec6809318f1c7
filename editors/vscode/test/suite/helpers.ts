import * as vscode from "vscode";

import type { Api } from "../../src/extension";
import type { Environment } from "../../src/model";

/** The running extension's API (activates it when the workspace did not yet). */
export async function extensionApi(): Promise<Api> {
  const ext = vscode.extensions.getExtension<Api>("devenv.devenv");
  if (!ext) throw new Error("the devenv extension is not loaded");
  return ext.activate();
}

/** Polls `check` (on events, not timers, when it can) until true; fails after `ms`. */
export async function until<T>(what: string, ms: number, check: () => T | undefined | false): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${String(ms)} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function project(): string {
  const p = process.env.DEVENV_TEST_PROJECT;
  if (!p) throw new Error("DEVENV_TEST_PROJECT is not set (run through test/run.mjs)");
  return p;
}

export function theEnv(api: Api): Environment {
  const env = api.model.find(project());
  if (!env) throw new Error(`no environment for ${project()}: ${api.model.environments.map((e) => e.projectDir).join(", ")}`);
  return env;
}
