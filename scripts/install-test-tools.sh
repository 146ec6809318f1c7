#!/usr/bin/env bash
# Installs the tools the end-to-end tests need that are not Rust crates:
#   - grpcurl (go install, pinned), into a cache dir outside the repo
#   - helm v3 (go install, pinned), same place: for the Kubernetes runtime tests
#   - Traefik v3 (go build of its module, pinned), same place: the ingress controller of
#     the networking.ingress cluster test
#   - kube-router v2.1.0 (go build of its module, pinned), same place, and Debian's
#     ipset and iptables: the NetworkPolicy enforcer of the workspace isolation test
#   - the CNCF distribution registry v3 (go build of its module, pinned), same place:
#     the registry the image push test pushes to and the test cluster pulls from
#   - Vault v1.21.0 (scripts/build-vault.sh), same place: `vault server -dev` for the
#     vault secret provider's test
#   - python3 (apt-get, only when missing): the example's services are python scripts
#   - a second local user, for the socket peer-uid test (root only)
#   - systemd-socket-activate, for the socket activation test
#   - PostgreSQL (initdb, postgres, psql), redis-server and redis-cli (apt-get, only when
#     missing; their system daemons are not started): the presets' e2e tests
#   - cargo-fuzz (cargo install --locked, pinned), same cache dir: for scripts/fuzz.sh
#   - Node.js and npm, protoc (protobuf-compiler): the TypeScript clients' checks
#     (clients/ts is generated with Debian's protoc); chromium for the dashboard's
#     browser tests
#   - jq: the grpcurl recipes of docs/grpcurl.md build their requests with it
#   - dbus (dbus-run-session), gnome-keyring and libsecret-tools (secret-tool): a real
#     Secret Service for the keychain provider's test (tests/tests/secret_keychain.rs)
#   - code-server (VS Code in the browser) and Debian's chromium, for the VS Code
#     extension's tests: scripts/install-code-server.sh, cached by version in the same
#     cache dir
#   - docker.io (Docker Engine) and busybox-static, dockerd started when no engine
#     answers: the container runtime's tests
# Idempotent: anything already present is left alone.
set -euo pipefail

# v1.9.2 and v1.9.3 cannot dial -unix sockets (grpcurl issue #546); v1.9.1 can.
GRPCURL_VERSION="${GRPCURL_VERSION:-v1.9.1}"
# v3.19.x: the newest helm v3 line that builds with Go 1.24 (v3.20 needs 1.25,
# v3.21+ needs 1.26); built against client-go v0.34, one minor from the test
# cluster's v1.33.
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
# Keep in step with TRAEFIK_VERSION in tests/tests/kube_ingress.rs.
TRAEFIK_VERSION="${TRAEFIK_VERSION:-v3.6.12}"
# The CNCF distribution registry; keep in step with REGISTRY_VERSION in
# tests/tests/kube_registry.rs.
REGISTRY_VERSION="${REGISTRY_VERSION:-v3.1.2}"
CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.2}"
# Keep in step with KUBE_ROUTER_VERSION in tests/tests/network_policy.rs.
KUBE_ROUTER_VERSION="${KUBE_ROUTER_VERSION:-v2.1.0}"
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
command -v jq >/dev/null || apt_install jq
# A Secret Service on a private session bus, for `provider: keychain`.
{ command -v dbus-run-session >/dev/null && command -v gnome-keyring-daemon >/dev/null \
    && command -v secret-tool >/dev/null; } || apt_install dbus dbus-daemon gnome-keyring libsecret-tools
# systemd-socket-activate passes a listening socket the way systemd does (LISTEN_FDS).
[ -x /usr/bin/systemd-socket-activate ] || [ -x /lib/systemd/systemd-socket-activate ] || apt_install systemd

# --- the TypeScript clients: node + npm, and protoc with the well-known types
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
{ command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/timestamp.proto ]; } || apt_install protobuf-compiler
# The dashboard's browser tests drive Debian's chromium with playwright-core (npm);
# no browser is downloaded.
[ -x /usr/bin/chromium ] || apt_install chromium

# --- PostgreSQL and Redis for the presets' tests. The tests run their own servers:
# the packages' daemons are kept from starting (policy-rc.d) and no default cluster
# is created.
have_initdb() { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if ! have_initdb || ! command -v psql >/dev/null || ! command -v redis-server >/dev/null \
    || ! command -v redis-cli >/dev/null; then
    policy=/usr/sbin/policy-rc.d
    placed_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        placed_policy=1
    fi
    as_root mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' | as_root tee /etc/postgresql-common/createcluster.d/devenv-tests.conf >/dev/null
    pkgs=()
    have_initdb || pkgs+=(postgresql)
    command -v psql >/dev/null || pkgs+=(postgresql-client)
    command -v redis-server >/dev/null || pkgs+=(redis-server)
    command -v redis-cli >/dev/null || pkgs+=(redis-tools)
    apt_install "${pkgs[@]}"
    [ "$placed_policy" -eq 0 ] || as_root rm -f "$policy"
fi

ensure_go() {
    if ! command -v go >/dev/null; then
        if [ -x /usr/local/go/bin/go ]; then
            export PATH="/usr/local/go/bin:$PATH"
        else
            apt_install golang-go
        fi
    fi
}

# --- grpcurl
mkdir -p "$TOOLS_DIR/bin"
want="$TOOLS_DIR/bin/grpcurl"
stamp="$TOOLS_DIR/bin/.grpcurl-version"
if [ -x "$want" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$GRPCURL_VERSION" ]; then
    log "grpcurl $GRPCURL_VERSION already in $want"
else
    ensure_go
    log "go install grpcurl@$GRPCURL_VERSION -> $want"
    GOBIN="$TOOLS_DIR/bin" GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
        go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
    echo "$GRPCURL_VERSION" >"$stamp"
fi

# --- helm (v3), from its Go module, with the version stamps its Makefile sets
helm_bin="$TOOLS_DIR/bin/helm"
helm_stamp="$TOOLS_DIR/bin/.helm-version"
if [ -x "$helm_bin" ] && [ "$(cat "$helm_stamp" 2>/dev/null)" = "$HELM_VERSION" ]; then
    log "helm $HELM_VERSION already in $helm_bin"
else
    ensure_go
    log "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION -> $helm_bin (cold: several minutes)"
    # The Kubernetes version helm assumes without a cluster (helm template,
    # lint): client-go v0.N -> 1.N, as helm's Makefile derives it.
    helm_gomod="$(cd / && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')"
    k8s_minor="$(sed -n 's#^\s*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$helm_gomod" | head -1)"
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ldflags="$ldflags -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    if [ -n "$k8s_minor" ]; then
        for pkg in pkg/lint/rules pkg/chartutil; do
            ldflags="$ldflags -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
        done
    fi
    GOBIN="$TOOLS_DIR/bin" GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0 \
        nice -n 19 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    echo "$HELM_VERSION" >"$helm_stamp"
fi

# --- Traefik, the ingress controller of networking.ingress's cluster test
# (tests/tests/kube_ingress.rs runs it as a host process with its kubernetes ingress
# provider), built from its Go module into a directory keyed by version. v3.6.12:
# v3.7.x's go.mod replaces ./pkg/config/dynamic/ext, which its module zip lacks.
# Cold: long (a large module graph); skipped when the binary is there.
traefik_bin="$TOOLS_DIR/traefik-$TRAEFIK_VERSION/traefik"
if [ -x "$traefik_bin" ]; then
    log "traefik $TRAEFIK_VERSION already in $traefik_bin"
else
    log "go build traefik $TRAEFIK_VERSION -> $traefik_bin (cold: a long build)"
    traefik_dir="$(cd / && go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
    [ -d "$traefik_dir" ] || { log "go mod download of traefik $TRAEFIK_VERSION gave no directory"; exit 1; }
    mkdir -p "$TOOLS_DIR/traefik-$TRAEFIK_VERSION"
    (cd "$traefik_dir" && GOFLAGS="-mod=readonly -buildvcs=false" \
        nice -n 19 go build -trimpath -o "$traefik_bin.tmp" ./cmd/traefik)
    mv "$traefik_bin.tmp" "$traefik_bin"
fi

# --- kube-router's firewall, the NetworkPolicy enforcer of the workspace isolation
# test (tests/tests/network_policy.rs runs it as a host process for that test only and
# removes its rules with tests/cluster/netpol-clean.sh). Not kube-network-policies
# v0.8.0: it queues packets with nftables' `queue` statement, which this kernel lacks
# (CONFIG_NFT_QUEUE unset). Security reports are listed for kube-router v2.1.0: a test
# tool on the loopback test cluster only. It drives the iptables and ipset commands.
command -v ipset >/dev/null || apt_install ipset
command -v iptables-restore >/dev/null || apt_install iptables
kube_router_bin="$TOOLS_DIR/kube-router-$KUBE_ROUTER_VERSION/kube-router"
if [ -x "$kube_router_bin" ]; then
    log "kube-router $KUBE_ROUTER_VERSION already in $kube_router_bin"
else
    log "go build kube-router $KUBE_ROUTER_VERSION -> $kube_router_bin"
    kube_router_dir="$(cd / && go mod download -json "github.com/cloudnativelabs/kube-router/v2@$KUBE_ROUTER_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
    [ -d "$kube_router_dir" ] || { log "go mod download of kube-router $KUBE_ROUTER_VERSION gave no directory"; exit 1; }
    mkdir -p "$TOOLS_DIR/kube-router-$KUBE_ROUTER_VERSION"
    (cd "$kube_router_dir" && GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
        nice -n 19 go build -trimpath -ldflags "-s -w" -o "$kube_router_bin.tmp" ./cmd/kube-router)
    mv "$kube_router_bin.tmp" "$kube_router_bin"
fi

# --- The CNCF distribution registry, for `spec.cluster.image.registry` against a
# real registry (tests/tests/kube_registry.rs runs it as a host process on 127.0.0.1),
# built from its Go module into a directory keyed by version. Its own cmd/registry
# links every storage driver (Azure, GCS, S3 SDKs: ~38 min cold here); the test needs
# the filesystem driver only, so a three-line main with the same `registry` command
# and just that driver (and inmemory) is built from a copy of the module, with the
# module's own go.mod/go.sum: ~2 min cold.
registry_bin="$TOOLS_DIR/registry-$REGISTRY_VERSION/registry"
if [ -x "$registry_bin" ]; then
    log "registry $REGISTRY_VERSION already in $registry_bin"
else
    log "go build distribution registry $REGISTRY_VERSION (filesystem and inmemory storage) -> $registry_bin"
    registry_dir="$(cd / && go mod download -json "github.com/distribution/distribution/v3@$REGISTRY_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
    [ -d "$registry_dir" ] || { log "go mod download of distribution $REGISTRY_VERSION gave no directory"; exit 1; }
    mkdir -p "$TOOLS_DIR/registry-$REGISTRY_VERSION"
    registry_src="$(mktemp -d)"
    cp -r "$registry_dir/." "$registry_src/" && chmod -R u+w "$registry_src"
    mkdir -p "$registry_src/cmd/registry-local"
    cat > "$registry_src/cmd/registry-local/main.go" <<'GO'
package main

import (
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

func main() { _ = registry.RootCmd.Execute() }
GO
    (cd "$registry_src" && GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
        nice -n 19 go build -trimpath -o "$registry_bin.tmp" ./cmd/registry-local)
    rm -rf "$registry_src"
    mv "$registry_bin.tmp" "$registry_bin"
fi

# --- HashiCorp Vault, for `provider: vault` against a real `vault server -dev`
# (tests/tests/secret_vault.rs): scripts/build-vault.sh builds one pinned release from
# its Go module into $TOOLS_DIR/vault-VERSION and returns at once when it is there.
# Cold it is a long build (43 min on the shared 2-core machine, under load).
bash "$(dirname "$0")/build-vault.sh" >/dev/null

# --- cargo-fuzz, for the fuzz targets in fuzz/ (scripts/fuzz.sh); built from crates.io
cargo_fuzz_bin="$TOOLS_DIR/bin/cargo-fuzz"
cargo_fuzz_stamp="$TOOLS_DIR/bin/.cargo-fuzz-version"
if [ -x "$cargo_fuzz_bin" ] && [ "$(cat "$cargo_fuzz_stamp" 2>/dev/null)" = "$CARGO_FUZZ_VERSION" ]; then
    log "cargo-fuzz $CARGO_FUZZ_VERSION already in $cargo_fuzz_bin"
else
    log "cargo install cargo-fuzz@$CARGO_FUZZ_VERSION -> $cargo_fuzz_bin"
    nice -n 19 cargo install --locked --quiet --version "$CARGO_FUZZ_VERSION" \
        --root "$TOOLS_DIR/cargo-fuzz-$CARGO_FUZZ_VERSION" cargo-fuzz
    ln -sf "$TOOLS_DIR/cargo-fuzz-$CARGO_FUZZ_VERSION/bin/cargo-fuzz" "$cargo_fuzz_bin"
    echo "$CARGO_FUZZ_VERSION" >"$cargo_fuzz_stamp"
fi

# --- code-server + chromium for the VS Code extension's tests (editors/vscode)
DEVENV_TOOLS_DIR="$TOOLS_DIR" bash "$(dirname "$0")/install-code-server.sh"

# --- Docker Engine for the container runtime's tests (tests/tests/containers.rs):
# Debian's docker.io (dockerd, containerd, runc, the docker CLI) and busybox-static,
# whose rootfs the tests import as their image (no registry is reachable). dockerd is
# started in the background when no engine answers; its log is $TOOLS_DIR/dockerd.log.
command -v dockerd >/dev/null && [ -x /usr/bin/docker ] || apt_install docker.io
[ -x /bin/busybox ] || apt_install busybox-static
if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        log "starting dockerd (log: $TOOLS_DIR/dockerd.log)"
        mkdir -p "$TOOLS_DIR"
        nohup dockerd >"$TOOLS_DIR/dockerd.log" 2>&1 &
        for _ in $(seq 1 120); do
            docker info >/dev/null 2>&1 && break
            sleep 0.5
        done
        docker info >/dev/null 2>&1 || { log "dockerd did not answer within 60 s; see $TOOLS_DIR/dockerd.log"; exit 1; }
    else
        log "no Docker engine answers and not root: start dockerd (the container tests will fail)"
    fi
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

log "done (grpcurl: $want, helm: $helm_bin, traefik: $traefik_bin, kube-router: $kube_router_bin, registry: $registry_bin, cargo-fuzz: $cargo_fuzz_bin)"
