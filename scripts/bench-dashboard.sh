#!/usr/bin/env bash
# The dashboard benchmark in one command (docs/benchmarks.md, "Dashboard"): devenv's
# page and Tilt's side by side in one headless Chromium, 300 services, 1,000 log
# lines/s; prints each figure and a table at the end.
#   bash scripts/bench-dashboard.sh                  # 60 s of load per page
#   BENCH_SECONDS=600 bash scripts/bench-dashboard.sh   # the 10-minute soak
# Builds release binaries of devenvd and devenv first (set DEVENVD and DEVENV to use
# others), installs Tilt v0.37.6 with its web UI into ~/.cache/devenv-tools (once;
# scripts/install-bench-tools.sh), and the page's npm packages. BENCH_PEERS=devenv
# leaves Tilt out. Not part of the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

if [ -z "${DEVENVD:-}" ] || [ -z "${DEVENV:-}" ]; then
    cargo build --release -p devenvd -p devenv-cli
fi
case ",${BENCH_PEERS:-devenv,tilt}," in
*,tilt,*) bash "$root/scripts/install-bench-tools.sh" tilt ;;
esac
cd "$root/clients/dashboard"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --loglevel=error
exec node bench/dashboard-bench.mjs
