// The connection to devenvd, kept up by one owner: connects on demand and after a
// loss, with back-off; wakes up early when the socket appears (fs.watch on its
// directory), so a daemon started anywhere is noticed without polling.
import * as fs from "node:fs";
import * as path from "node:path";

import * as vscode from "vscode";

// Loaded on the first connect, not at activation: @grpc/grpc-js takes most of the
// bundle's load time (docs/benchmarks.md), and activation blocks the extension host.
import type { Connection } from "./client";
import { resolveSocket } from "./socket";

export type DaemonState =
  | { readonly kind: "connecting" }
  | { readonly kind: "connected"; readonly connection: Connection }
  | { readonly kind: "down"; readonly error: Error };

/** Exponential back-off: 250 ms doubling to 30 s, reset after a success. */
export class Backoff {
  private next: number;
  constructor(
    private readonly first = 250,
    private readonly max = 30_000,
  ) {
    this.next = first;
  }
  delay(): number {
    const d = this.next;
    this.next = Math.min(this.next * 2, this.max);
    return d;
  }
  reset(): void {
    this.next = this.first;
  }
  peek(): number {
    return this.next;
  }
}

export class Daemon implements vscode.Disposable {
  private state: DaemonState = { kind: "connecting" };
  private connecting: Promise<Connection> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private dirWatcher: fs.FSWatcher | undefined;
  private readonly backoff = new Backoff();
  private disposed = false;
  private readonly changed = new vscode.EventEmitter<DaemonState>();
  /** Fires on every state change (connected, down, connecting). */
  readonly onDidChange = this.changed.event;

  constructor(private readonly socketOverride: () => string | undefined) {}

  get socket(): string {
    return resolveSocket(this.socketOverride());
  }

  get current(): DaemonState {
    return this.state;
  }

  /** The connection, connecting now when there is none (commands call this). */
  connection(): Promise<Connection> {
    if (this.state.kind === "connected") return Promise.resolve(this.state.connection);
    if (this.connecting) return this.connecting;
    this.clearRetry();
    const socket = this.socket;
    this.set({ kind: "connecting" });
    const attempt = import("./client").then(({ Connection }) => Connection.open(socket)).then(
      (c) => {
        this.connecting = undefined;
        if (this.disposed) {
          c.close();
          throw new Error("devenv extension stopped");
        }
        this.backoff.reset();
        this.stopDirWatch();
        this.set({ kind: "connected", connection: c });
        return c;
      },
      (e: unknown) => {
        this.connecting = undefined;
        const error = e instanceof Error ? e : new Error(String(e));
        this.set({ kind: "down", error });
        this.scheduleRetry(socket);
        throw error;
      },
    );
    this.connecting = attempt;
    return attempt;
  }

  /** A stream on `c` said the daemon went away: drop it and reconnect (backed off). */
  lost(c: Connection, error: Error): void {
    if (this.state.kind !== "connected" || this.state.connection !== c) return;
    c.close();
    this.set({ kind: "down", error });
    this.scheduleRetry(this.socket);
  }

  /** Drop the connection and connect again at once (socket setting changed, daemon started). */
  reconnect(): void {
    if (this.state.kind === "connected") this.state.connection.close();
    // The socket may have moved (setting changed): watch the new one's directory.
    this.stopDirWatch();
    this.state = { kind: "connecting" };
    this.connection().catch(() => undefined);
  }

  private set(s: DaemonState): void {
    this.state = s;
    if (!this.disposed) this.changed.fire(s);
  }

  private scheduleRetry(socket: string): void {
    if (this.disposed) return;
    this.clearRetry();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connection().catch(() => undefined);
    }, this.backoff.delay());
    this.watchDir(socket);
  }

  /**
   * Wakes the retry up when the socket appears: watches its directory, or, while that
   * does not exist yet (no daemon ever ran), the parent for the directory's creation.
   */
  private watchDir(socket: string): void {
    if (this.dirWatcher) return;
    const dir = path.dirname(socket);
    const wake = (): void => {
      if (this.state.kind !== "down") return;
      this.clearRetry();
      this.connection().catch(() => undefined);
    };
    const watch = (target: string, wanted: string, then: () => void): boolean => {
      try {
        const w = fs.watch(target, (_event, name) => {
          if (name === wanted) then();
        });
        w.on("error", () => {
          this.stopDirWatch();
        });
        this.dirWatcher = w;
        return true;
      } catch {
        return false;
      }
    };
    if (watch(dir, path.basename(socket), wake)) return;
    // No socket directory yet: its creation switches to watching it.
    watch(path.dirname(dir), path.basename(dir), () => {
      this.stopDirWatch();
      this.watchDir(socket);
      wake();
    });
  }

  /** The next back-off delay (ms), for tests. */
  get nextRetryMs(): number {
    return this.backoff.peek();
  }

  private stopDirWatch(): void {
    this.dirWatcher?.close();
    this.dirWatcher = undefined;
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  dispose(): void {
    this.disposed = true;
    this.clearRetry();
    this.stopDirWatch();
    if (this.state.kind === "connected") this.state.connection.close();
    this.changed.dispose();
  }
}
