#!/usr/bin/env bash
# The VS Code extension's checks (run by scripts/test.sh after the daemon is built;
# runnable alone): npm ci, tsc --noEmit (strict), eslint, the esbuild bundle, the .vsix
# (vsce), then its tests in a real VS Code: code-server's extension host against a
# real devenvd with the quickstart example, and a UI test in Debian's Chromium
# (editors/vscode/test/run.mjs). Needs what scripts/install-test-tools.sh installs
# (code-server, chromium) and target/debug/devenvd + devenv.
# npm's cache is ~/.npm (outside the repo); .npmrc sets ignore-scripts.
set -euo pipefail

cd "$(dirname "$0")/../editors/vscode"

echo "--- editors/vscode: npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "--- editors/vscode: tsc --noEmit, eslint"
npm run --silent typecheck
npm run --silent lint
echo "--- editors/vscode: bundle and .vsix"
npm run --silent build
npm test --silent
npm run --silent package >/dev/null
echo "extension bundle: $(stat -c %s dist/extension.js) bytes; vsix: $(stat -c %s dist/devenv.vsix) bytes"
echo "--- editors/vscode: tests in code-server + chromium"
node test/run.mjs
