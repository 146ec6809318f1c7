#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for a bounded time, starting from its committed
# corpus (fuzz/corpus/TARGET), and fails on the first crash, panic, timeout or memory
# blow-up (libFuzzer exits non-zero and leaves the input in fuzz/artifacts/TARGET/).
#   DEVENV_FUZZ_SECONDS   time per target (default 60)
#   DEVENV_FUZZ_TARGET    build dir (default ~/.cache/devenv-fuzz-target)
# cargo-fuzz comes from scripts/install-test-tools.sh. It needs nightly rustc flags: the
# nightly toolchain when rustup has one installed, else the installed stable toolchain
# with RUSTC_BOOTSTRAP=1 (nothing is downloaded here).
set -euo pipefail

cd "$(dirname "$0")/.."
TOOLS_DIR="${DEVENV_TOOLS_DIR:-$HOME/.cache/devenv-tools}"
export PATH="$TOOLS_DIR/bin:$HOME/.cargo/bin:$PATH"
seconds="${DEVENV_FUZZ_SECONDS:-60}"
# The instrumented build of devenv-core and its dependencies takes many minutes cold:
# keep it outside the repo, so a fresh clone (CI) reuses it.
target_dir="${DEVENV_FUZZ_TARGET:-$HOME/.cache/devenv-fuzz-target}"

if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz: cargo-fuzz not found in $TOOLS_DIR/bin: run scripts/install-test-tools.sh" >&2
    exit 1
fi

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    echo "fuzz: no nightly toolchain installed; using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
fi

for target in config receiver_reply; do
    # libFuzzer adds the inputs it finds to the first corpus dir: a scratch copy, so the
    # committed seeds stay as they are.
    work="fuzz/corpus-work/$target"
    rm -rf "$work"
    mkdir -p "$work"
    log="fuzz/corpus-work/$target.log"
    echo "fuzz: $target for ${seconds}s" >&2
    status=0
    cargo "${toolchain[@]}" fuzz run --debug-assertions --target-dir "$target_dir" "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz: $target FAILED (exit $status); the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    echo "fuzz: $target ok: ${runs:-?} executions, 0 crashes, corpus $(ls "$work" | wc -l) new inputs" >&2
done
