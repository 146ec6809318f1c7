#!/usr/bin/env bash
# The one command that runs every test on a fresh machine (and what .ci/run runs):
#   1. installs what the tests need (scripts/install-test-tools.sh: python3, grpcurl,
#      a second user for the peer-uid test)
#   2. cargo fmt --check, cargo clippy -D warnings, no import circle between core's
#      rooms (scripts/import-cycles.py); the TypeScript clients'
#      checks (scripts/test-ts.sh: generated code fresh, tsc, eslint, node tests)
#   3. builds devenvd and devenv, runs the whole workspace's tests, then the ignored
#      ones (they need root / the second user, which step 1 provides)
#   4. the cargo-fuzz targets in fuzz/, about a minute each (scripts/fuzz.sh)
#   5. the Kubernetes suite, tests/cluster/test.sh, when present
# Exits non-zero on the first failure.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"

step() { printf '\n==> %s\n' "$*"; }

export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step "install test tools"
bash "$root/scripts/install-test-tools.sh"
export GRPCURL="${GRPCURL:-${DEVENV_TOOLS_DIR:-$HOME/.cache/devenv-tools}/bin/grpcurl}"

if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "no import circle between core's rooms (scripts/import-cycles.py)"
python3 "$root/scripts/import-cycles.py"

step "TypeScript clients (scripts/test-ts.sh)"
bash "$root/scripts/test-ts.sh"

step "cargo build -p devenvd -p devenv-cli"
cargo build -p devenvd -p devenv-cli

# The e2e harness would build them itself; they are fresh now.
export DEVENV_E2E_NO_BUILD=1

step "dashboard in Chromium (scripts/test-dashboard-browser.sh)"
bash "$root/scripts/test-dashboard-browser.sh"

step "grpcurl recipes of docs/grpcurl.md (scripts/test-grpcurl.sh)"
bash "$root/scripts/test-grpcurl.sh"

step "VS Code extension in code-server (scripts/test-vscode.sh)"
bash "$root/scripts/test-vscode.sh"

step "cargo test --workspace"
cargo test --workspace

step "cargo test --workspace -- --ignored (root-only tests)"
# The k8s_* tests need the test cluster: tests/cluster/test.sh runs them below.
cargo test --workspace -- --ignored --skip k8s_

step "fuzz targets (scripts/fuzz.sh: ${DEVENV_FUZZ_SECONDS:-60}s each)"
bash "$root/scripts/fuzz.sh"

if [ -n "${DEVENV_TEST_SKIP_CLUSTER:-}" ]; then
    step "SKIPPING the Kubernetes suite (DEVENV_TEST_SKIP_CLUSTER is set; CI never sets it)"
elif [ -f "$root/tests/cluster/test.sh" ]; then
    step "Kubernetes suite: tests/cluster/test.sh"
    bash "$root/tests/cluster/test.sh"
fi

step "all tests passed"
