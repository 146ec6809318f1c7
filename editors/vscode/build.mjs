// Bundles the extension (and its test suite) with esbuild: one CommonJS file each,
// `vscode` provided by the host. @devenv/api is bundled from its TypeScript sources.
import * as esbuild from "esbuild";

const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  // Resolve @devenv/api's imports from this package's node_modules (one copy of
  // the protobuf-ts runtime), not through the symlink's real path.
  preserveSymlinks: true,
  external: ["vscode"],
  sourcemap: true,
  logLevel: "warning",
};

await esbuild.build({ ...common, entryPoints: ["src/extension.ts"], outfile: "dist/extension.js", minify: true });
// The suite runs inside code-server's extension host; mocha stays a runtime require.
await esbuild.build({
  ...common,
  entryPoints: ["test/suite/index.ts"],
  outfile: "dist/test/suite.js",
  external: ["vscode", "mocha"],
});
// Unit tests of the parts that need no VS Code (node --test).
await esbuild.build({ ...common, entryPoints: ["test/unit/socket.test.ts"], outfile: "dist/test/unit.js" });
