// Socket resolution and trust checks on real files and a real listening socket
// (node --test; no VS Code needed).
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";

import { checkDaemonPid, checkSocket, resolveSocket, UntrustedSocketError } from "../../src/socket";

const env =
  (vars: Record<string, string>) =>
  (k: string): string | undefined =>
    vars[k] === "" ? undefined : vars[k];

void test("the socket is resolved as crates/api does", () => {
  assert.equal(resolveSocket("", env({ DEVENV_SOCKET: "/x/s.sock", XDG_RUNTIME_DIR: "/run/user/1" }), 7), "/x/s.sock");
  assert.equal(resolveSocket(undefined, env({ XDG_RUNTIME_DIR: "/run/user/1" }), 7), "/run/user/1/devenv/devenvd.sock");
  assert.equal(resolveSocket(undefined, env({ DEVENV_SOCKET: "", XDG_RUNTIME_DIR: "" }), 7, "linux"), "/tmp/devenv-7/devenvd.sock");
  assert.equal(resolveSocket(undefined, env({ TMPDIR: "/var/t" }), 7, "darwin"), "/var/t/devenv/devenvd.sock");
  assert.equal(resolveSocket("/o/s.sock", env({ DEVENV_SOCKET: "/x/s.sock" }), 7), "/o/s.sock");
});

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "devenv-socket-test-"));
}

void test("a private dir with our own listening socket is trusted; missing ones mean not running", async () => {
  const dir = tmpdir();
  fs.chmodSync(dir, 0o700);
  const sock = path.join(dir, "s.sock");
  assert.equal(checkSocket(sock), false);
  assert.equal(checkSocket(path.join(dir, "gone", "s.sock")), false);
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    assert.equal(checkSocket(sock), true);
    checkDaemonPid(sock, process.pid);
  } finally {
    server.close();
  }
});

void test("group/other bits, a symlinked dir, a regular file and another owner are refused", () => {
  const dir = tmpdir();
  const sock = path.join(dir, "s.sock");
  for (const mode of [0o770, 0o750, 0o701, 0o1777]) {
    fs.chmodSync(dir, mode);
    assert.throws(() => checkSocket(sock), (e: unknown) => {
      assert.ok(e instanceof UntrustedSocketError);
      assert.match(e.message, new RegExp(`has mode ${mode.toString(8).padStart(4, "0")}; it must be 0700`));
      return true;
    });
  }
  fs.chmodSync(dir, 0o700);
  const link = path.join(tmpdir(), "link");
  fs.symlinkSync(dir, link);
  assert.throws(() => checkSocket(path.join(link, "s.sock")), /is a symbolic link/);
  fs.writeFileSync(sock, "not a socket");
  assert.throws(() => checkSocket(sock), /it is not a socket/);
  // Another owner: checked against a uid that is not the file's.
  const uid = fs.lstatSync(dir).uid;
  assert.throws(() => checkSocket(sock, uid + 1), /is owned by uid \d+, not by you/);
  assert.throws(() => { checkDaemonPid(sock, process.pid, uid + 1); }, /runs as uid \d+, not as you/);
});
