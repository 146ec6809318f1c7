// Entry point VS Code loads from extensionTestsPath: runs the suite with mocha inside
// the extension host and rejects when a test fails (the workbench then reports a
// non-zero exit code through codeAutomationExit).
import Mocha from "mocha";

import { benchmark } from "./bench";
import { defineTests } from "./extension.test";

export async function run(): Promise<void> {
  if (process.env.DEVENV_TEST_BENCH === "1") {
    await benchmark();
    return;
  }
  const mocha = new Mocha({ ui: "bdd", timeout: 60_000, color: false, reporter: "spec" });
  // The tests are bundled into this file: define them against mocha's globals.
  mocha.suite.emit("pre-require", globalThis, "suite.js", mocha);
  defineTests();
  const failures = await new Promise<number>((resolve) => {
    mocha.run(resolve);
  });
  if (failures > 0) throw new Error(`${String(failures)} test(s) failed`);
}
