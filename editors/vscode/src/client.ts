// One connection to devenvd over its Unix socket: checks the socket like crates/api
// does, then asks the daemon's version and refuses a protocol it does not speak.
import * as net from "node:net";

import {
  DaemonServiceClient,
  EnvironmentServiceClient,
  ForwardServiceClient,
  LogServiceClient,
  PROTOCOL_VERSION,
  ServiceServiceClient,
  SyncServiceClient,
  type VersionResponse,
} from "@devenv/api";
import { ChannelCredentials } from "@grpc/grpc-js";
import { GrpcTransport } from "@protobuf-ts/grpc-transport";

import { checkDaemonPid, checkSocket, errorText, isCode, NotRunningError } from "./socket";

/** The daemon speaks another protocol version than this extension. */
export class ProtocolMismatchError extends Error {
  /** The daemon is the older one (a restart with the current devenv fixes it). */
  readonly older: boolean;

  constructor(
    readonly socket: string,
    readonly daemon: VersionResponse,
  ) {
    const older = daemon.protocolVersion < PROTOCOL_VERSION;
    super(
      `devenvd ${daemon.daemonVersion} on ${socket} speaks protocol ${String(daemon.protocolVersion)}, ` +
        `this extension speaks ${String(PROTOCOL_VERSION)}: ` +
        (older
          ? "the daemon is too old; restart it (devenv daemon stop, then devenv daemon start)"
          : "the extension is too old; update it"),
    );
    this.name = "ProtocolMismatchError";
    this.older = older;
  }
}

/** The daemon's services over one checked channel, and what Version said. */
export class Connection {
  readonly daemon: DaemonServiceClient;
  readonly environments: EnvironmentServiceClient;
  readonly services: ServiceServiceClient;
  readonly logs: LogServiceClient;
  readonly forwards: ForwardServiceClient;
  readonly sync: SyncServiceClient;

  private constructor(
    readonly socket: string,
    private readonly transport: GrpcTransport,
    readonly version: VersionResponse,
  ) {
    this.daemon = new DaemonServiceClient(transport);
    this.environments = new EnvironmentServiceClient(transport);
    this.services = new ServiceServiceClient(transport);
    this.logs = new LogServiceClient(transport);
    this.forwards = new ForwardServiceClient(transport);
    this.sync = new SyncServiceClient(transport);
  }

  /**
   * Connects: trust checks first (nothing sent to an untrusted socket), a plain
   * connect to tell "not running" apart quickly, then Version (an empty request) with
   * a deadline, the reported pid's owner, and the protocol version.
   */
  static async open(socket: string, timeoutMs = 5000): Promise<Connection> {
    if (!checkSocket(socket)) throw new NotRunningError(socket, "ENOENT");
    await probe(socket, timeoutMs);
    const transport = new GrpcTransport({
      host: `unix://${socket}`,
      channelCredentials: ChannelCredentials.createInsecure(),
      clientOptions: {
        // Streams (Watch, logs) stay open for hours; keepalive notices a dead peer.
        "grpc.keepalive_time_ms": 30_000,
        "grpc.max_receive_message_length": 16 * 1024 * 1024,
      },
    });
    try {
      const daemon = new DaemonServiceClient(transport);
      const { response } = await daemon.version({}, { timeout: timeoutMs });
      checkDaemonPid(socket, response.pid);
      if (response.protocolVersion !== PROTOCOL_VERSION) throw new ProtocolMismatchError(socket, response);
      return new Connection(socket, transport, response);
    } catch (e) {
      transport.close();
      throw e;
    }
  }

  close(): void {
    this.transport.close();
  }
}

/** Connects and disconnects at once: ENOENT/ECONNREFUSED mean nothing listens. */
function probe(socket: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socket);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`devenvd on ${socket} did not accept a connection in ${String(timeoutMs)} ms`));
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      s.destroy();
      resolve();
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      if (isCode(e, "ENOENT") || isCode(e, "ECONNREFUSED")) {
        reject(new NotRunningError(socket, (e as NodeJS.ErrnoException).code ?? "ECONNREFUSED"));
      } else {
        reject(new Error(`cannot connect to ${socket}: ${errorText(e)}`));
      }
    });
  });
}
