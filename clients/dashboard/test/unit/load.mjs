// Loads a module of src/ for a unit test: esbuild compiles it (and what it imports)
// to one ES module in a temp dir, which is then imported. Only modules that need no
// DOM are tested this way; the page as a whole is tested in Chromium (test/browser).
import * as esbuild from "esbuild";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const out = mkdtempSync(join(tmpdir(), "devenv-dashboard-unit-"));

export async function load(module) {
  const r = await esbuild.build({
    entryPoints: [join(root, "src", module)],
    bundle: true,
    format: "esm",
    platform: "neutral",
    preserveSymlinks: true,
    write: false,
    logLevel: "error",
  });
  const file = join(out, `${module.replace(/\W/g, "_")}.mjs`);
  writeFileSync(file, r.outputFiles[0].contents);
  return import(pathToFileURL(file).href);
}
