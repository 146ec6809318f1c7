// "Open Shell": a VS Code terminal on a service's shell, as `devenv shell` gives one:
// a Pseudoterminal over the daemon's Exec stream (ServiceService.Exec) with a TTY;
// keystrokes go as stdin, the terminal's size as resizes, and the exit code is shown
// when the shell ends. Closing the terminal ends the stream, and the daemon ends the
// shell (its process group) with it.
import type { ExecInput, ExecOutput } from "@devenv/api";
import type { DuplexStreamingCall } from "@protobuf-ts/runtime-rpc";
import * as vscode from "vscode";

import type { Daemon } from "./daemon";
import type { Environment } from "./model";
import { errorText } from "./socket";

/**
 * The open stream, boxed: a protobuf-ts call is a thenable (it resolves when the call
 * ends), so a promise resolved with the call itself would wait for its end.
 */
interface Open {
  readonly call: DuplexStreamingCall<ExecInput, ExecOutput>;
}

/** The daemon takes at most 64 KiB of stdin a message. */
const STDIN_CHUNK = 64 * 1024;

export class ExecPty implements vscode.Pseudoterminal {
  private readonly written = new vscode.EventEmitter<string>();
  private readonly closed = new vscode.EventEmitter<number | undefined>();
  readonly onDidWrite = this.written.event;
  readonly onDidClose = this.closed.event;

  /** The terminal's size as last sent to the daemon (at start or by a resize). */
  size: vscode.TerminalDimensions | undefined;
  private readonly abort = new AbortController();
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();
  /** The shell ended (its code shown): the next key closes the terminal. */
  private ended = false;
  private started!: (open: Open | undefined) => void;
  /**
   * Sends in order, one at a time (as protobuf-ts wants), after the start message:
   * keys typed (or `sendText`) before the stream is open wait for it.
   */
  private sending = new Promise<Open | undefined>((resolve) => {
    this.started = resolve;
  });

  constructor(
    private readonly daemon: Daemon,
    private readonly env: Environment,
    private readonly service: string,
  ) {}

  open(size: vscode.TerminalDimensions | undefined): void {
    this.size = size;
    void this.run(size);
  }

  private async run(size: vscode.TerminalDimensions | undefined): Promise<void> {
    try {
      const conn = await this.daemon.connection();
      const call = conn.services.exec({ abort: this.abort.signal });
      const start = call.requests.send({
        input: {
          oneofKind: "start",
          start: {
            environment: this.env.ref(),
            service: this.service,
            command: [],
            tty: true,
            stdin: true,
            container: "",
            pod: "",
            workspace: "",
            size: size ? { rows: size.rows, cols: size.columns } : undefined,
          },
        },
      });
      void start.then(
        () => { this.started({ call }); },
        () => { this.started(undefined); },
      );
      for await (const out of call.responses) {
        const o = out.output;
        if (o.oneofKind === "stdout" || o.oneofKind === "stderr") {
          const bytes = o.oneofKind === "stdout" ? o.stdout : o.stderr;
          this.written.fire(this.decoder.decode(bytes, { stream: true }));
        } else if (o.oneofKind === "exit") {
          const why = o.exit.message ? `: ${o.exit.message}` : "";
          this.finish(`shell exited with code ${String(o.exit.code)}${why}`);
          return;
        }
      }
      await call.status;
      this.finish("the daemon ended the shell without an exit code");
    } catch (e) {
      this.started(undefined);
      if (this.abort.signal.aborted) return;
      this.finish(`cannot open a shell in ${this.service}: ${errorText(e)}`);
    }
  }

  private finish(what: string): void {
    if (this.ended) return;
    this.ended = true;
    this.written.fire(`${this.decoder.decode()}\r\n\x1b[2m[devenv: ${what}; press any key to close]\x1b[0m\r\n`);
    // Our half of the stream ends too (nothing more to type).
    this.sending = this.sending.then(async (open) => {
      await open?.call.requests.complete().catch(() => undefined);
      return undefined;
    });
  }

  private send(input: ExecInput["input"]): void {
    this.sending = this.sending.then(async (open) => {
      if (!open || this.ended) return open;
      try {
        await open.call.requests.send({ input });
        return open;
      } catch {
        return undefined; // the stream is gone: its reader says why
      }
    });
  }

  handleInput(data: string): void {
    if (this.ended) {
      this.closed.fire(undefined);
      return;
    }
    const bytes = this.encoder.encode(data);
    for (let i = 0; i < bytes.length; i += STDIN_CHUNK) {
      this.send({ oneofKind: "stdin", stdin: bytes.subarray(i, i + STDIN_CHUNK) });
    }
  }

  setDimensions(size: vscode.TerminalDimensions): void {
    this.size = size;
    this.send({ oneofKind: "resize", resize: { rows: size.rows, cols: size.columns } });
  }

  close(): void {
    // The terminal was closed: ending the stream ends the shell.
    this.abort.abort();
    this.written.dispose();
    this.closed.dispose();
  }
}

/** A terminal on a service's shell and the Exec stream behind it. */
export interface Shell {
  readonly terminal: vscode.Terminal;
  readonly pty: ExecPty;
}

/** Opens a terminal on `service`'s shell and shows it. */
export function openShell(daemon: Daemon, env: Environment, service: string): Shell {
  const pty = new ExecPty(daemon, env, service);
  const terminal = vscode.window.createTerminal({ name: `devenv: ${service}`, pty, iconPath: new vscode.ThemeIcon("terminal") });
  terminal.show();
  return { terminal, pty };
}
