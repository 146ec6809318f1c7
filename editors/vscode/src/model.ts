// What the extension knows about the workspace's environments: fed by Watch streams
// only (a snapshot, then changes), read by the tree, the status bar and commands.
import { type EnvironmentRef, type ServiceStatus, ServiceState } from "@devenv/api";
import * as vscode from "vscode";

export class Environment {
  /** Services in the order the daemon first reported them. */
  readonly services = new Map<string, ServiceStatus>();
  /** The environment's name (metadata.name), once Validate or Watch told it. */
  name: string | undefined;
  /** Why it cannot be watched now (config error, daemon down), for the tree. */
  error: string | undefined;
  /** Local port of each kubernetes service's first forward, for "open URL". */
  readonly forwards = new Map<string, number>();

  constructor(
    /** The project directory (a workspace folder holding .devenv/config.yml). */
    readonly projectDir: string,
  ) {}

  get key(): string {
    return this.projectDir;
  }

  get label(): string {
    return this.name ?? this.projectDir.split("/").pop() ?? this.projectDir;
  }

  /** The reference every RPC names: the extension host's environment is the client's. */
  ref(): EnvironmentRef {
    const clientEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) clientEnv[k] = v;
    return { projectDir: this.projectDir, env: "", configFile: "", clientEnv };
  }
}

export interface Counts {
  readonly ready: number;
  readonly total: number;
  readonly failed: readonly string[];
}

const BAD = new Set([ServiceState.FAILED, ServiceState.UNHEALTHY]);
const GOOD = new Set([ServiceState.READY, ServiceState.COMPLETED]);

export class Model implements vscode.Disposable {
  readonly environments: Environment[] = [];
  private readonly changed = new vscode.EventEmitter<Environment | undefined>();
  /** Fires with the environment that changed (undefined: the list itself). */
  readonly onDidChange = this.changed.event;
  private readonly serviceChanged = new vscode.EventEmitter<{ env: Environment; status: ServiceStatus }>();
  /** Fires once per service status received. */
  readonly onDidChangeService = this.serviceChanged.event;

  setProjects(dirs: readonly string[]): void {
    const keep = new Set(dirs);
    const kept = this.environments.filter((e) => keep.has(e.projectDir));
    this.environments.splice(0, this.environments.length, ...kept);
    for (const d of dirs) {
      if (!this.environments.some((e) => e.projectDir === d)) this.environments.push(new Environment(d));
    }
    this.changed.fire(undefined);
  }

  find(projectDir: string): Environment | undefined {
    return this.environments.find((e) => e.projectDir === projectDir);
  }

  update(env: Environment, status: ServiceStatus): void {
    env.services.set(status.name, status);
    env.error = undefined;
    this.serviceChanged.fire({ env, status });
    this.changed.fire(env);
  }

  /** A new Watch stream starts with a snapshot: what it does not list is gone. */
  reset(env: Environment): void {
    env.services.clear();
    this.changed.fire(env);
  }

  setError(env: Environment, error: string | undefined): void {
    if (env.error === error) return;
    env.error = error;
    this.changed.fire(env);
  }

  setName(env: Environment, name: string): void {
    if (env.name === name) return;
    env.name = name;
    this.changed.fire(env);
  }

  counts(): Counts {
    let ready = 0;
    let total = 0;
    const failed: string[] = [];
    for (const env of this.environments) {
      for (const s of env.services.values()) {
        total++;
        if (GOOD.has(s.state)) ready++;
        if (BAD.has(s.state)) failed.push(s.name);
      }
    }
    return { ready, total, failed };
  }

  dispose(): void {
    this.changed.dispose();
    this.serviceChanged.dispose();
  }
}
