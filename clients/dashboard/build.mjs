// Builds the dashboard into crates/devenvd/dashboard/ (index.html + assets/), the
// directory devenvd embeds at compile time, so `cargo build` alone serves the page.
//   node build.mjs          write the bundle (npm run build)
//   node build.mjs --check  build into a temp dir and fail when it differs from what
//                           is committed (scripts/test-ts.sh runs this)
// Deterministic: no timestamps, no source maps with absolute paths; asset names carry
// a hash of their content (so a browser never runs an old script after an upgrade).
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const committed = join(here, "../../crates/devenvd/dashboard");
const check = process.argv.includes("--check");

function hash(bytes) {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 10);
}

// @devenv/api is a link to clients/ts; its generated code imports the protobuf-ts
// runtime, which must come from this package's node_modules whether or not
// clients/ts has its own installed (else the bundle differs, or holds two copies).
export const alias = Object.fromEntries(
  ["@protobuf-ts/runtime", "@protobuf-ts/runtime-rpc"].map((p) => [p, join(here, "node_modules", p)]),
);

async function build(outDir) {
  const js = await esbuild.build({
    alias,
    entryPoints: [join(here, "src/main.ts")],
    bundle: true,
    format: "esm",
    target: ["es2022", "chrome110", "firefox110", "safari16"],
    minify: true,
    legalComments: "none",
    preserveSymlinks: true,
    write: false,
    logLevel: "warning",
    charset: "utf8",
  });
  const css = await esbuild.build({
    entryPoints: [join(here, "src/style.css")],
    bundle: true,
    minify: true,
    write: false,
    logLevel: "warning",
    charset: "utf8",
  });
  const jsBytes = js.outputFiles[0].contents;
  const cssBytes = css.outputFiles[0].contents;
  const jsName = `app-${hash(jsBytes)}.js`;
  const cssName = `app-${hash(cssBytes)}.css`;
  const html = readFileSync(join(here, "src/index.html"), "utf8").replace("%JS%", jsName).replace("%CSS%", cssName);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(join(outDir, "assets"), { recursive: true });
  writeFileSync(join(outDir, "index.html"), html);
  writeFileSync(join(outDir, "assets", jsName), jsBytes);
  writeFileSync(join(outDir, "assets", cssName), cssBytes);
  writeFileSync(join(outDir, "assets", "favicon.svg"), readFileSync(join(here, "src/favicon.svg")));
  return { jsName, jsBytes: jsBytes.length, cssBytes: cssBytes.length };
}

function listFiles(dir, root = dir, out = new Map()) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) listFiles(p, root, out);
    else out.set(relative(root, p), readFileSync(p));
  }
  return out;
}

if (check) {
  const tmp = mkdtempSync(join(tmpdir(), "devenv-dashboard-"));
  try {
    const out = join(tmp, "dashboard");
    await build(out);
    const want = listFiles(out);
    const have = listFiles(committed);
    const problems = [];
    for (const [f, bytes] of want) {
      const c = have.get(f);
      if (!c) problems.push(`missing: crates/devenvd/dashboard/${f}`);
      else if (!c.equals(bytes)) problems.push(`differs: crates/devenvd/dashboard/${f}`);
    }
    for (const f of have.keys()) if (!want.has(f)) problems.push(`not produced by the build: crates/devenvd/dashboard/${f}`);
    if (problems.length > 0) {
      console.error(problems.join("\n"));
      console.error("build.mjs: the committed dashboard bundle is stale: run 'cd clients/dashboard && npm ci && npm run build' and commit crates/devenvd/dashboard/");
      process.exit(1);
    }
    console.log("build.mjs: crates/devenvd/dashboard/ matches a fresh build of clients/dashboard");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  const r = await build(committed);
  console.log(`build.mjs: wrote crates/devenvd/dashboard/ (index.html, assets/${r.jsName} ${String(r.jsBytes)} B, css ${String(r.cssBytes)} B)`);
}
