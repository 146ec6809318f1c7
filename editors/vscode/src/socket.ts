// Where the daemon's socket is, and whether it can be trusted: the same rules, in the
// same order, as crates/api (paths.rs, trust.rs), checked before a byte is sent.
import * as fs from "node:fs";
import * as path from "node:path";

/** Environment lookups, injectable for tests; an empty value counts as unset. */
export type EnvLookup = (key: string) => string | undefined;

export function processEnv(key: string): string | undefined {
  const v = process.env[key];
  return v === undefined || v === "" ? undefined : v;
}

/**
 * The socket path: the `devenv.socketPath` setting when set, else `$DEVENV_SOCKET`, else
 * `$XDG_RUNTIME_DIR/devenv/devenvd.sock`, else `/tmp/devenv-$UID/devenvd.sock` (macOS:
 * `$TMPDIR/devenv/devenvd.sock`), as `devenv_api::Paths::resolve`.
 */
export function resolveSocket(
  override: string | undefined,
  env: EnvLookup = processEnv,
  uid: number = process.getuid?.() ?? 0,
  platform: NodeJS.Platform = process.platform,
): string {
  if (override !== undefined && override !== "") return override;
  const explicit = env("DEVENV_SOCKET");
  if (explicit !== undefined) return explicit;
  const runtime = env("XDG_RUNTIME_DIR");
  if (runtime !== undefined) return path.join(runtime, "devenv", "devenvd.sock");
  if (platform === "darwin") {
    const tmp = env("TMPDIR");
    if (tmp !== undefined) return path.join(tmp, "devenv", "devenvd.sock");
  }
  return `/tmp/devenv-${String(uid)}/devenvd.sock`;
}

/** Why a socket is not trusted; one line naming the path and who owns it. */
export class UntrustedSocketError extends Error {
  constructor(
    readonly socket: string,
    readonly reason: string,
  ) {
    super(
      `refusing to talk to ${socket}: ${reason}; it may be another user's impostor, so nothing was sent`,
    );
    this.name = "UntrustedSocketError";
  }
}

/** Nothing listens at the socket (missing, or a stale socket file). */
export class NotRunningError extends Error {
  constructor(
    readonly socket: string,
    readonly code: string,
  ) {
    super(`no daemon is listening on ${socket} (${code})`);
    this.name = "NotRunningError";
  }
}

function userLabel(uid: number): string {
  return `uid ${String(uid)}`;
}

/**
 * The checks crates/api makes before connecting, by lstat (no symlink followed):
 * the socket's directory is a directory of ours with no group/other bits (0700), and
 * the socket is a socket owned by us. crates/api then checks the listening process's
 * uid with SO_PEERCRED, which Node cannot read without a native addon; instead the
 * socket file must be ours (only we, or root, can bind a socket inside our 0700
 * directory), and after connecting, `checkDaemonPid` checks that the pid the daemon
 * reports runs as us. Returns false when the directory or socket does not exist
 * (not running); throws UntrustedSocketError otherwise.
 */
export function checkSocket(socket: string, euid: number = process.geteuid?.() ?? 0): boolean {
  const dir = path.dirname(socket);
  let dirStat: fs.Stats;
  try {
    dirStat = fs.lstatSync(dir);
  } catch (e) {
    if (isCode(e, "ENOENT")) return false;
    throw new UntrustedSocketError(socket, `cannot check ${dir}: ${errorText(e)}`);
  }
  if (dirStat.isSymbolicLink()) {
    throw new UntrustedSocketError(socket, `${dir} is a symbolic link, not a directory of your own`);
  }
  if (!dirStat.isDirectory()) throw new UntrustedSocketError(socket, `${dir} is not a directory`);
  if (dirStat.uid !== euid) {
    throw new UntrustedSocketError(
      socket,
      `${dir} is owned by ${userLabel(dirStat.uid)}, not by you, ${userLabel(euid)}`,
    );
  }
  const mode = dirStat.mode & 0o7777;
  if ((mode & 0o077) !== 0) {
    throw new UntrustedSocketError(
      socket,
      `${dir} has mode ${mode.toString(8).padStart(4, "0")}; it must be 0700 (only you)`,
    );
  }
  let sockStat: fs.Stats;
  try {
    sockStat = fs.lstatSync(socket);
  } catch (e) {
    if (isCode(e, "ENOENT")) return false;
    throw new UntrustedSocketError(socket, `cannot check it: ${errorText(e)}`);
  }
  if (!sockStat.isSocket()) throw new UntrustedSocketError(socket, "it is not a socket");
  if (sockStat.uid !== euid) {
    throw new UntrustedSocketError(
      socket,
      `it is owned by ${userLabel(sockStat.uid)}, not by you, ${userLabel(euid)}`,
    );
  }
  return true;
}

/**
 * Linux: the daemon's reported pid runs as us (the owner of /proc/PID). Where /proc is
 * missing (macOS) nothing more can be checked from Node; the socket checks stand.
 */
export function checkDaemonPid(socket: string, pid: number, euid: number = process.geteuid?.() ?? 0): void {
  if (process.platform !== "linux" || pid === 0) return;
  let st: fs.Stats;
  try {
    st = fs.statSync(`/proc/${String(pid)}`);
  } catch {
    // The pid is in another pid namespace, or gone: not evidence of an impostor.
    return;
  }
  if (st.uid !== euid) {
    throw new UntrustedSocketError(
      socket,
      `the process listening on it says it is pid ${String(pid)}, which runs as ${userLabel(st.uid)}, not as you, ${userLabel(euid)}`,
    );
  }
}

export function isCode(e: unknown, code: string): boolean {
  return typeof e === "object" && e !== null && "code" in e && (e).code === code;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
