// One LogOutputChannel per service, following the daemon's log stream while shown
// (the last 200 lines, then live); re-opened with back-off when the daemon comes back.
// Each line is written at its level (the daemon reads it from the line: JSON, logfmt,
// ERROR/[warn] prefixes), so the Output view's level filter and colours apply; a line
// without one is info, or warning when it came on stderr.
import { type LogEntry, LogLevel, LogStream } from "@devenv/api";
import { RpcError } from "@protobuf-ts/runtime-rpc";
import * as vscode from "vscode";

import { Backoff, type Daemon } from "./daemon";
import { CONNECTION_LOST } from "./watch";
import type { Environment } from "./model";

const TAIL = 200;

class ServiceLog implements vscode.Disposable {
  readonly channel: vscode.LogOutputChannel;
  private abort: AbortController | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff(500, 30_000);
  private disposed = false;
  private waiting: vscode.Disposable | undefined;
  private lastTime: Date | undefined;
  /** LogEntry.position of the last line shown: a reconnect resumes right after it
   * (from the daemon's memory or disk), no line lost or shown twice. */
  private lastPosition = 0;
  /** Lines written to the channel, and the channel method each went through; for the tests. */
  readonly written: string[] = [];
  readonly writtenAs: ChannelLevel[] = [];
  private readonly wrote = new vscode.EventEmitter<string>();
  readonly onDidWrite = this.wrote.event;

  constructor(
    private readonly daemon: Daemon,
    private readonly env: Environment,
    private readonly service: string,
  ) {
    this.channel = vscode.window.createOutputChannel(`devenv: ${service}`, { log: true });
    void this.follow();
  }

  private async follow(): Promise<void> {
    if (this.stopped()) return;
    const state = this.daemon.current;
    if (state.kind !== "connected") {
      // Reconnecting is the Daemon's job (one back-off); follow again once it has.
      this.waitForConnection();
      return;
    }
    const conn = state.connection;
    const abort = new AbortController();
    this.abort = abort;
    try {
      const call = conn.logs.stream(
        {
          environment: this.env.ref(),
          services: [this.service],
          follow: true,
          // After a reconnect, only what came after the last line shown (by its
          // position; by its time from a daemon that sends no positions).
          tail: this.lastTime ? 0 : TAIL,
          since: this.lastTime && this.lastPosition === 0 ? { seconds: Math.floor(this.lastTime.getTime() / 1000), nanos: 0 } : undefined,
          grep: "",
          minLevel: LogLevel.UNSPECIFIED,
          resumeAfter: this.lastPosition,
        },
        { abort: abort.signal },
      );
      for await (const e of call.responses) {
        this.backoff.reset();
        this.write(e);
      }
      // The daemon ended a following stream: it is going away.
      if (!abort.signal.aborted) this.daemon.lost(conn, new Error("devenvd closed the log stream"));
    } catch (e) {
      if (abort.signal.aborted || this.stopped()) return;
      if (e instanceof RpcError && !CONNECTION_LOST.has(e.code)) {
        // Refused (the config does not load, the service is unknown): say so, retry later.
        this.channel.error(`devenv: ${e.message}`);
        this.retry = setTimeout(() => {
          this.retry = undefined;
          void this.follow();
        }, this.backoff.delay());
        return;
      }
      this.daemon.lost(conn, e instanceof Error ? e : new Error(String(e)));
    }
    if (!this.stopped() && !abort.signal.aborted) this.waitForConnection();
  }

  private waitForConnection(): void {
    if (this.waiting) return;
    this.waiting = this.daemon.onDidChange((s) => {
      if (s.kind !== "connected") return;
      this.waiting?.dispose();
      this.waiting = undefined;
      void this.follow();
    });
    // Opened while disconnected: one attempt now (the user asked for these logs).
    if (this.daemon.current.kind === "down") this.daemon.connection().catch(() => undefined);
  }

  /** Read through a call: `disposed` changes while a stream is awaited. */
  private stopped(): boolean {
    return this.disposed;
  }

  private write(e: LogEntry): void {
    if (e.missed > 0) {
      this.channel.warn(`devenv: ${String(e.missed)} lines missed (${e.line || "dropped by the daemon"})`);
      return;
    }
    if (e.position > 0) {
      if (e.position <= this.lastPosition) return;
      this.lastPosition = e.position;
    }
    if (e.time) this.lastTime = new Date(e.time.seconds * 1000 + Math.floor(e.time.nanos / 1e6));
    const as = channelLevel(e);
    this.channel[as](e.stream === LogStream.SYSTEM ? `[devenv] ${e.line}` : e.line);
    if (this.written.length >= 1000) {
      this.written.shift();
      this.writtenAs.shift();
    }
    this.written.push(e.line);
    this.writtenAs.push(as);
    this.wrote.fire(e.line);
  }

  dispose(): void {
    this.disposed = true;
    if (this.retry) clearTimeout(this.retry);
    this.abort?.abort();
    this.waiting?.dispose();
    this.channel.dispose();
    this.wrote.dispose();
  }
}

type ChannelLevel = "trace" | "debug" | "info" | "warn" | "error";

/** The LogOutputChannel method for a line: its level, else its stream's. */
export function channelLevel(e: LogEntry): ChannelLevel {
  switch (e.level) {
    case LogLevel.TRACE:
      return "trace";
    case LogLevel.DEBUG:
      return "debug";
    case LogLevel.INFO:
      return "info";
    case LogLevel.WARN:
      return "warn";
    case LogLevel.ERROR:
    case LogLevel.FATAL:
      return "error";
    case LogLevel.UNSPECIFIED:
      return e.stream === LogStream.STDERR ? "warn" : "info";
  }
}

export class Logs implements vscode.Disposable {
  private readonly logs = new Map<string, ServiceLog>();

  constructor(private readonly daemon: Daemon) {}

  /** The service's channel, following; created on first use. */
  open(env: Environment, service: string): ServiceLog {
    const key = `${env.key}\0${service}`;
    let log = this.logs.get(key);
    if (!log) {
      log = new ServiceLog(this.daemon, env, service);
      this.logs.set(key, log);
    }
    return log;
  }

  dispose(): void {
    for (const l of this.logs.values()) l.dispose();
    this.logs.clear();
  }
}
