#!/usr/bin/env bash
# Checks of the TypeScript clients (run by scripts/test.sh; runnable alone):
#   clients/ts: npm ci, generated code fresh (check-gen), tsc --noEmit, eslint, node --test
#   clients/dashboard: npm ci, tsc --noEmit, eslint, the committed bundle in
#     crates/devenvd/dashboard/ equal to a fresh build (check-build), unit tests
# npm installs come from the npm registry only; each package's .npmrc sets
# ignore-scripts, so nothing downloads anything at install time.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "test-ts: node and npm are needed (Node.js >= 20): install them (scripts/install-test-tools.sh)" >&2
    exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    echo "test-ts: Node.js >= 20 needed, found $(node --version)" >&2
    exit 1
fi

npm_ci() { (cd "$1" && npm ci --no-audit --no-fund --loglevel=error); }

echo "--- clients/ts"
npm_ci "$root/clients/ts"
(cd "$root/clients/ts" && npm run --silent check-gen && npm run --silent typecheck && npm run --silent lint && npm test --silent)

echo "--- clients/dashboard"
npm_ci "$root/clients/dashboard"
(cd "$root/clients/dashboard" && npm run --silent typecheck && npm run --silent lint && npm run --silent check-build && npm test --silent)
