// One Watch stream per environment while the daemon is connected: the only source
// of service state (no polling). A stream that fails because the daemon went away
// hands the loss to Daemon (which reconnects with back-off); one that fails for
// another reason (a config error) is retried with its own back-off, or at once when
// the config is saved.
import { ServiceState } from "@devenv/api";
import { RpcError } from "@protobuf-ts/runtime-rpc";
import * as vscode from "vscode";

import type { Connection } from "./client";
import { Backoff, type Daemon } from "./daemon";
import type { Environment, Model } from "./model";

/** Codes that mean the connection, not the request, is the problem. */
export const CONNECTION_LOST: ReadonlySet<string> = new Set(["UNAVAILABLE", "CANCELLED", "INTERNAL", "UNKNOWN"]);

class EnvWatch {
  private readonly abort = new AbortController();
  private retry: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff(500, 30_000);

  constructor(
    private readonly conn: Connection,
    private readonly env: Environment,
    private readonly model: Model,
    private readonly daemon: Daemon,
    private readonly onReady: (env: Environment) => void,
  ) {
    void this.run();
  }

  private async run(): Promise<void> {
    const call = this.conn.environments.watch({ environment: this.env.ref() }, { abort: this.abort.signal });
    let first = true;
    try {
      for await (const status of call.responses) {
        if (first) {
          this.model.reset(this.env);
          this.backoff.reset();
          first = false;
        }
        this.model.update(this.env, status);
        if (status.state === ServiceState.READY) this.onReady(this.env);
      }
      // The daemon ended the stream (it is shutting down).
      if (!this.abort.signal.aborted) this.daemon.lost(this.conn, new Error("devenvd closed the Watch stream"));
    } catch (e) {
      if (this.abort.signal.aborted) return;
      if (e instanceof RpcError && !CONNECTION_LOST.has(e.code)) {
        // The request was refused (INVALID_ARGUMENT: the config does not load).
        this.model.setError(this.env, e.message);
        this.retry = setTimeout(() => {
          this.retry = undefined;
          void this.run();
        }, this.backoff.delay());
        return;
      }
      this.daemon.lost(this.conn, e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** Retry now (the config was saved). */
  kick(): void {
    if (this.retry === undefined) return;
    clearTimeout(this.retry);
    this.retry = undefined;
    this.backoff.reset();
    void this.run();
  }

  stop(): void {
    if (this.retry) clearTimeout(this.retry);
    this.abort.abort();
  }
}

export class Watches implements vscode.Disposable {
  private readonly watches = new Map<string, EnvWatch>();
  private conn: Connection | undefined;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly model: Model,
    private readonly daemon: Daemon,
    private readonly onReady: (env: Environment) => void,
  ) {
    this.subscriptions.push(
      daemon.onDidChange((s) => {
        if (s.kind === "connected") {
          this.start(s.connection);
        } else {
          this.stopAll();
          for (const env of model.environments) {
            model.setError(env, s.kind === "down" ? s.error.message : undefined);
          }
        }
      }),
      model.onDidChange((env) => {
        // The workspace's projects changed: watch the new ones.
        if (env === undefined && this.conn) this.start(this.conn);
      }),
    );
  }

  private start(conn: Connection): void {
    if (this.conn !== conn) this.stopAll();
    this.conn = conn;
    const keys = new Set(this.model.environments.map((e) => e.key));
    for (const [key, w] of this.watches) {
      if (!keys.has(key)) {
        w.stop();
        this.watches.delete(key);
      }
    }
    for (const env of this.model.environments) {
      if (!this.watches.has(env.key)) {
        this.watches.set(env.key, new EnvWatch(conn, env, this.model, this.daemon, this.onReady));
      }
    }
  }

  kick(env: Environment): void {
    this.watches.get(env.key)?.kick();
  }

  private stopAll(): void {
    for (const w of this.watches.values()) w.stop();
    this.watches.clear();
    this.conn = undefined;
  }

  dispose(): void {
    this.stopAll();
    for (const d of this.subscriptions) d.dispose();
  }
}
