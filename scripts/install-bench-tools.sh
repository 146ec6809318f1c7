#!/usr/bin/env bash
# Installs the peer tools the benchmarks compare devenv with (not needed by the tests):
#   - process-compose (built from its Go module, pinned), into the same cache dir as the
#     test tools
#   - tilt with its web UI (built from its Go module and its web/ dir, pinned), for the
#     dashboard benchmark (docs/benchmarks.md, "Dashboard")
# Idempotent: a binary of the pinned version already there is left alone.
# `install-bench-tools.sh process-compose` or `... tilt` installs one of them only.
set -euo pipefail

# v1.85.0 builds with the local Go (1.26) and is served by the module proxy.
PROCESS_COMPOSE_VERSION="${PROCESS_COMPOSE_VERSION:-v1.85.0}"
# The module proxy serves only a few tilt versions (and refuses the list); v0.37.6 builds.
TILT_VERSION="${TILT_VERSION:-v0.37.6}"
TOOLS_DIR="${DEVENV_TOOLS_DIR:-$HOME/.cache/devenv-tools}"

log() { printf 'install-bench-tools: %s\n' "$*" >&2; }

mkdir -p "$TOOLS_DIR/bin"
if ! command -v go >/dev/null; then
    if [ -x /usr/local/go/bin/go ]; then
        export PATH="/usr/local/go/bin:$PATH"
    else
        log "go not found; install Go (apt-get install golang-go) first"
        exit 1
    fi
fi

# Prints the source dir of MODULE@VERSION in the (read-only) module cache.
# `go install MODULE@VERSION` asks the proxy for the module's version list (to look for
# a deprecation notice), which the proxy here refuses; downloading the pinned version
# and building it inside its own module (its go.mod and go.sum) needs no list.
module_dir() {
    local dir
    dir="$(cd "$TOOLS_DIR" && GOWORK=off GOFLAGS= go mod download -json "$1" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
        log "go mod download did not give a source dir for $1"
        return 1
    fi
    printf '%s\n' "$dir"
}

install_process_compose() {
    local want="$TOOLS_DIR/bin/process-compose"
    local stamp="$TOOLS_DIR/bin/.process-compose-version"
    if [ -x "$want" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$PROCESS_COMPOSE_VERSION" ]; then
        log "process-compose $PROCESS_COMPOSE_VERSION already in $want"
        return 0
    fi
    log "building process-compose $PROCESS_COMPOSE_VERSION -> $want"
    local src
    src="$(module_dir "github.com/f1bonacc1/process-compose@$PROCESS_COMPOSE_VERSION")"
    (cd "$src" && GOFLAGS="${GOFLAGS:-} -buildvcs=false -mod=readonly" go build -o "$want.tmp" .)
    mv "$want.tmp" "$want"
    echo "$PROCESS_COMPOSE_VERSION" >"$stamp"
    log "installed $want"
}

install_tilt() {
    local want="$TOOLS_DIR/bin/tilt"
    local stamp="$TOOLS_DIR/bin/.tilt-version"
    if [ -x "$want" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$TILT_VERSION" ]; then
        log "tilt $TILT_VERSION already in $want"
        return 0
    fi
    if ! command -v node >/dev/null; then
        log "node not found; tilt's web UI is built with node (and its own yarn release)"
        return 1
    fi
    local cached work
    cached="$(module_dir "github.com/tilt-dev/tilt@$TILT_VERSION")"
    # The module cache is read-only, and tilt's go.mod replace directives apply only when
    # building inside its own module: build in a writable copy (kept for a rebuild).
    work="$TOOLS_DIR/tilt-src-$TILT_VERSION"
    if [ ! -f "$work/.copied" ]; then
        rm -rf "$work"
        cp -r "$cached" "$work"
        chmod -R u+w "$work"
        touch "$work/.copied"
    fi
    # Upstream builds from a vendor/ dir the module zip lacks, and its go.sum carries a
    # checksum for github.com/docker/buildx v0.32.1 that the module does not match (the
    # build stops with a SECURITY ERROR): take the checksum database's value instead.
    local buildx_sum
    buildx_sum="$(cd "$TOOLS_DIR" && GOWORK=off GOFLAGS= go mod download -json github.com/docker/buildx@v0.32.1 |
        sed -n 's/^[[:space:]]*"Sum": "\(.*\)",$/\1/p')"
    if [ -z "$buildx_sum" ]; then
        log "no checksum for github.com/docker/buildx@v0.32.1 from the module proxy"
        return 1
    fi
    sed -i "s|^github.com/docker/buildx v0.32.1 h1:.*|github.com/docker/buildx v0.32.1 $buildx_sum|" "$work/go.sum"
    # The module has no built UI (pkg/assets/build holds only robots.txt): build it with
    # the yarn release the module ships (fetches from the npm registry, ~1.2 GB).
    if [ ! -f "$work/web/build/index.html" ]; then
        local yarn
        yarn="$(ls "$work"/web/.yarn/releases/yarn-*.cjs | head -n 1)"
        log "building tilt's web UI with $(basename "$yarn")"
        (cd "$work/web" && node "$yarn" install --immutable && node "$yarn" build)
    fi
    cp -r "$work"/web/build/. "$work/pkg/assets/build/"
    log "building tilt $TILT_VERSION -> $want"
    (cd "$work" && GOWORK=off GOFLAGS="-buildvcs=false -mod=mod" \
        go build -ldflags "-s -w" -o "$want.tmp" ./cmd/tilt)
    mv "$want.tmp" "$want"
    echo "$TILT_VERSION" >"$stamp"
    # The copy with the UI's node_modules is ~1.2 GB; the binary holds all it needs.
    rm -rf "$work"
    log "installed $want"
}

case "${1:-all}" in
process-compose) install_process_compose ;;
tilt) install_tilt ;;
all)
    install_process_compose
    install_tilt
    ;;
*)
    log "unknown tool '$1' (process-compose, tilt or nothing for both)"
    exit 2
    ;;
esac
