#!/usr/bin/env bash
# The dashboard's browser tests (issue 13): Debian's Chromium driven by playwright-core
# against a real devenvd and devenv built from this workspace (target/debug, or
# DEVENVD / DEVENV). Each test world has its own HOME, socket, data dir and free
# ports (clients/dashboard/test/browser/harness.mjs). Saves docs/img/dashboard.png.
# Needs: cargo build -p devenvd -p devenv-cli; /usr/bin/chromium; npm ci done in
# clients/dashboard (scripts/test-ts.sh does it).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"

[ -x /usr/bin/chromium ] || { echo "test-dashboard-browser: /usr/bin/chromium not found: apt-get install chromium (scripts/install-test-tools.sh)" >&2; exit 1; }
[ -d "$root/clients/dashboard/node_modules/playwright-core" ] || (cd "$root/clients/dashboard" && npm ci --no-audit --no-fund --loglevel=error)
cd "$root/clients/dashboard"
npm run --silent test:browser
