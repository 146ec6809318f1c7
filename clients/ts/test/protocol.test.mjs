// The protocol version the TypeScript clients announce must be the daemon's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const read = (rel) => readFileSync(new URL(rel, import.meta.url), "utf8");

test("PROTOCOL_VERSION equals devenv_api::PROTOCOL_VERSION", () => {
  const rust = /pub const PROTOCOL_VERSION: u32 = (\d+);/.exec(read("../../../crates/api/src/lib.rs"));
  const ts = /export const PROTOCOL_VERSION = (\d+);/.exec(read("../src/index.ts"));
  assert.ok(rust, "crates/api/src/lib.rs has no `pub const PROTOCOL_VERSION: u32 = N;`");
  assert.ok(ts, "clients/ts/src/index.ts has no `export const PROTOCOL_VERSION = N;`");
  assert.equal(ts[1], rust[1]);
});
