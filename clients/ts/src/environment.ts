import type { EnvironmentRef, EnvironmentSummary } from "./gen/devenv/v1/devenv";

/**
 * The EnvironmentRef that names an environment listed by `EnvironmentService.List`.
 * It carries no client_env: the daemon reuses what the last `up` of that
 * environment used (DASHBOARD-CONTRACT.md).
 */
export function environmentRef(summary: Pick<EnvironmentSummary, "project" | "env">): EnvironmentRef {
  return { projectDir: summary.project, env: summary.env, configFile: "", clientEnv: {} };
}

/** A stable key for an environment (project directory plus environment name). */
export function environmentKey(ref: Pick<EnvironmentRef, "projectDir" | "env">): string {
  return ref.env === "" ? ref.projectDir : `${ref.projectDir}#${ref.env}`;
}
