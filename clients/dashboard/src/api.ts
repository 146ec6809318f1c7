// The page's one connection to devenvd: gRPC-web over fetch to the origin that
// served it (the session cookie goes along; the daemon checks Host and Origin).
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import { RpcError } from "@protobuf-ts/runtime-rpc";
import {
  DaemonServiceClient,
  EnvironmentServiceClient,
  ForwardServiceClient,
  LogServiceClient,
  ServiceServiceClient,
  SyncServiceClient,
  WorkspaceServiceClient,
} from "@devenv/api";

export interface Api {
  daemon: DaemonServiceClient;
  env: EnvironmentServiceClient;
  service: ServiceServiceClient;
  logs: LogServiceClient;
  sync: SyncServiceClient;
  forward: ForwardServiceClient;
  workspace: WorkspaceServiceClient;
}

export function connect(baseUrl: string): Api {
  const transport = new GrpcWebFetchTransport({ baseUrl, format: "binary" });
  return {
    daemon: new DaemonServiceClient(transport),
    env: new EnvironmentServiceClient(transport),
    service: new ServiceServiceClient(transport),
    logs: new LogServiceClient(transport),
    sync: new SyncServiceClient(transport),
    forward: new ForwardServiceClient(transport),
    workspace: new WorkspaceServiceClient(transport),
  };
}

/** The session cookie was refused: the daemon restarted with new secrets, or never saw this browser. */
export function isUnauthenticated(e: unknown): boolean {
  return e instanceof RpcError && e.code === "UNAUTHENTICATED";
}

/**
 * The daemon could not be reached or did not answer as a gRPC server (network
 * error, daemon gone, refused session), as opposed to a refusal of the request
 * itself (unknown environment, invalid config), which proves it is there.
 */
export function isTransportError(e: unknown): boolean {
  if (!(e instanceof RpcError)) return true;
  return ["INTERNAL", "UNAVAILABLE", "UNKNOWN", "DATA_LOSS", "UNAUTHENTICATED", "PERMISSION_DENIED", "DEADLINE_EXCEEDED"].includes(e.code);
}

/** Read through a call, so that TypeScript does not narrow it across an await. */
export function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

export function isAbort(e: unknown): boolean {
  return (e instanceof RpcError && e.code === "CANCELLED") || (e instanceof DOMException && e.name === "AbortError");
}

/** One line for a person: the gRPC status message, else the error's text. */
export function describe(e: unknown): string {
  if (e instanceof RpcError) {
    const msg = decodeURIComponentSafe(e.message);
    return e.code === "UNKNOWN" || msg.includes(e.code) ? msg : `${msg} (${e.code})`;
  }
  return e instanceof Error ? e.message : String(e);
}

// grpc-web carries grpc-message percent-encoded.
function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
