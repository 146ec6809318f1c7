import { ForwardState, LogStream, ServiceState } from "./gen/devenv/v1/devenv";

/** How a service state looks to a person: the CLI's word, a colour, an icon. */
export interface StateStyle {
  /** The word `devenv status` prints: "ready", "failed", ... */
  readonly name: string;
  /** A CSS colour, readable on light and dark backgrounds. */
  readonly color: string;
  /** One character, so that state is not told by colour alone. */
  readonly icon: string;
  /** Which of the few meanings it has, for grouping and counting. */
  readonly kind: "ok" | "busy" | "bad" | "idle";
}

const STATE_STYLES: Readonly<Record<ServiceState, StateStyle>> = {
  [ServiceState.UNSPECIFIED]: { name: "unknown", color: "#8a8f98", icon: "?", kind: "idle" },
  [ServiceState.PENDING]: { name: "pending", color: "#8a8f98", icon: "\u25cb", kind: "busy" },
  [ServiceState.STARTING]: { name: "starting", color: "#d29922", icon: "\u25d4", kind: "busy" },
  [ServiceState.READY]: { name: "ready", color: "#2da44e", icon: "\u25cf", kind: "ok" },
  [ServiceState.UNHEALTHY]: { name: "unhealthy", color: "#e16f24", icon: "\u25b2", kind: "bad" },
  [ServiceState.FAILED]: { name: "failed", color: "#cf222e", icon: "\u2716", kind: "bad" },
  [ServiceState.STOPPING]: { name: "stopping", color: "#d29922", icon: "\u25d1", kind: "busy" },
  [ServiceState.STOPPED]: { name: "stopped", color: "#8a8f98", icon: "\u25a0", kind: "idle" },
  [ServiceState.COMPLETED]: { name: "completed", color: "#2f81f7", icon: "\u2714", kind: "ok" },
};

/** The style of a service state; unknown values (a newer daemon) look like UNSPECIFIED. */
export function stateStyle(state: ServiceState): StateStyle {
  // A newer daemon may send a state this build does not know.
  const byNumber: Readonly<Partial<Record<number, StateStyle>>> = STATE_STYLES;
  return byNumber[state] ?? STATE_STYLES[ServiceState.UNSPECIFIED];
}

/** The CLI's word for a state ("ready"), as in `devenv status --json`. */
export function stateName(state: ServiceState): string {
  return stateStyle(state).name;
}

/** The CLI's word for a forward state ("active", "waiting", "error", "stopped"). */
export function forwardStateName(state: ForwardState): string {
  switch (state) {
    case ForwardState.ACTIVE:
      return "active";
    case ForwardState.WAITING:
      return "waiting";
    case ForwardState.ERROR:
      return "error";
    case ForwardState.STOPPED:
      return "stopped";
    default:
      return "unknown";
  }
}

/** "stdout", "stderr", "system" for a log entry's stream. */
export function logStreamName(stream: LogStream): string {
  switch (stream) {
    case LogStream.STDOUT:
      return "stdout";
    case LogStream.STDERR:
      return "stderr";
    case LogStream.SYSTEM:
      return "system";
    default:
      return "unknown";
  }
}
