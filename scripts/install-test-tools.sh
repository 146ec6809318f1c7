#!/usr/bin/env bash
# Installs the tools the end-to-end tests need that are not Rust crates:
#   - grpcurl (go install, pinned), into a cache dir outside the repo
#   - python3 (apt-get, only when missing): the example's services are python scripts
#   - a second local user, for the socket peer-uid test (root only)
#   - systemd-socket-activate, for the socket activation test
# Idempotent: anything already present is left alone.
set -euo pipefail

# v1.9.2 and v1.9.3 cannot dial -unix sockets (grpcurl issue #546); v1.9.1 can.
GRPCURL_VERSION="${GRPCURL_VERSION:-v1.9.1}"
TOOLS_DIR="${DEVENV_TOOLS_DIR:-$HOME/.cache/devenv-tools}"
OTHER_USER="${DEVENV_TEST_OTHER_USER:-devenv-test-other}"

log() { printf 'install-test-tools: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; return 1
    fi
}

apt_updated=0
apt_install() {
    if ! command -v apt-get >/dev/null; then
        log "apt-get not available; install $* by hand"; return 1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# --- python3 and the small system tools the tests call
command -v python3 >/dev/null || apt_install python3
command -v setpriv >/dev/null || apt_install util-linux
command -v useradd >/dev/null || apt_install passwd
# systemd-socket-activate passes a listening socket the way systemd does (LISTEN_FDS).
[ -x /usr/bin/systemd-socket-activate ] || [ -x /lib/systemd/systemd-socket-activate ] || apt_install systemd

# --- grpcurl
mkdir -p "$TOOLS_DIR/bin"
want="$TOOLS_DIR/bin/grpcurl"
stamp="$TOOLS_DIR/bin/.grpcurl-version"
if [ -x "$want" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$GRPCURL_VERSION" ]; then
    log "grpcurl $GRPCURL_VERSION already in $want"
else
    if ! command -v go >/dev/null; then
        if [ -x /usr/local/go/bin/go ]; then
            export PATH="/usr/local/go/bin:$PATH"
        else
            apt_install golang-go
        fi
    fi
    log "go install grpcurl@$GRPCURL_VERSION -> $want"
    GOBIN="$TOOLS_DIR/bin" GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
        go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
    echo "$GRPCURL_VERSION" >"$stamp"
fi

# --- a second user for the peer-uid test
if [ "$(id -u)" -eq 0 ]; then
    if ! id -u "$OTHER_USER" >/dev/null 2>&1; then
        log "creating user $OTHER_USER"
        useradd -M -r -s /usr/sbin/nologin "$OTHER_USER"
    fi
else
    id -u "$OTHER_USER" >/dev/null 2>&1 || log "not root: user $OTHER_USER not created; the peer-uid test will fail"
fi

log "done (grpcurl: $want)"
