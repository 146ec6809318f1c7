#!/usr/bin/env bash
# Installs the peer tools the benchmarks compare devenv with (not needed by the tests):
#   - process-compose (built from its Go module, pinned), into the same cache dir as the
#     test tools
# Idempotent: a binary of the pinned version already there is left alone.
set -euo pipefail

# v1.85.0 builds with the local Go (1.26) and is served by the module proxy.
PROCESS_COMPOSE_VERSION="${PROCESS_COMPOSE_VERSION:-v1.85.0}"
TOOLS_DIR="${DEVENV_TOOLS_DIR:-$HOME/.cache/devenv-tools}"

log() { printf 'install-bench-tools: %s\n' "$*" >&2; }

mkdir -p "$TOOLS_DIR/bin"
want="$TOOLS_DIR/bin/process-compose"
stamp="$TOOLS_DIR/bin/.process-compose-version"
if [ -x "$want" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$PROCESS_COMPOSE_VERSION" ]; then
    log "process-compose $PROCESS_COMPOSE_VERSION already in $want"
    exit 0
fi
if ! command -v go >/dev/null; then
    if [ -x /usr/local/go/bin/go ]; then
        export PATH="/usr/local/go/bin:$PATH"
    else
        log "go not found; install Go (apt-get install golang-go) first"
        exit 1
    fi
fi
# `go install MODULE@VERSION` asks the proxy for the module's version list (to look for
# a deprecation notice), which the proxy here refuses; downloading the pinned version
# and building it inside its own module (its go.mod and go.sum) needs no list.
log "building process-compose $PROCESS_COMPOSE_VERSION -> $want"
src="$(cd "$TOOLS_DIR" && GOWORK=off GOFLAGS= go mod download -json "github.com/f1bonacc1/process-compose@$PROCESS_COMPOSE_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then
    log "go mod download did not give a source dir for process-compose@$PROCESS_COMPOSE_VERSION"
    exit 1
fi
(cd "$src" && GOFLAGS="${GOFLAGS:-} -buildvcs=false -mod=readonly" go build -o "$want.tmp" .)
mv "$want.tmp" "$want"
echo "$PROCESS_COMPOSE_VERSION" >"$stamp"
log "installed $want"
