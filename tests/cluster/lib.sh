# Shared settings for the devenv test cluster scripts. Sourced, not executed.
# shellcheck shell=bash

K8S_VERSION="${DEVENV_CLUSTER_K8S_VERSION:-v1.33.13}"
COREDNS_VERSION="${DEVENV_CLUSTER_COREDNS_VERSION:-v1.12.3}"

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${DEVENV_CLUSTER_CACHE:-$HOME/.cache/devenv-test-cluster}"
STATE="${DEVENV_CLUSTER_STATE:-/var/tmp/devenv-test-cluster}"
case "$STATE" in /*/*) ;; *) echo "DEVENV_CLUSTER_STATE must be an absolute path at least two levels deep: $STATE" >&2; exit 1 ;; esac
STATE="${STATE%/}"

# The recipe hash covers everything that determines the built artefacts, so a
# change to the build recipe or to the Go sources gets a fresh cache entry.
recipe_hash() {
  (cd "$CLUSTER_DIR" && cat build.sh $(find src -type f | LC_ALL=C sort) \
    && echo "$K8S_VERSION $COREDNS_VERSION") | sha256sum | cut -c1-12
}
BIN_CACHE="$CACHE_ROOT/$K8S_VERSION-$(recipe_hash)"
BIN="$BIN_CACHE/bin"
# Images depend on the binaries and on images.sh.
IMAGES="$BIN_CACHE/images/$(cat "$CLUSTER_DIR/images.sh" | sha256sum | cut -c1-12)"

# rancher's local-path-provisioner (github.com/rancher/local-path-provisioner):
# its own cache entry, keyed by its version and build-provisioner.sh, so
# neither invalidates the other's. v0.0.30: the newest release the Go module
# proxy served when this was written (v0.0.31 and v0.0.32 were not available
# from it, v0.0.33 had no checksum database entry).
LOCAL_PATH_PROVISIONER_VERSION="${DEVENV_CLUSTER_LPP_VERSION:-v0.0.30}"
provisioner_recipe_hash() {
  (cd "$CLUSTER_DIR" && cat build-provisioner.sh && echo "$LOCAL_PATH_PROVISIONER_VERSION") | sha256sum | cut -c1-12
}
PROVISIONER_CACHE="$CACHE_ROOT/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION-$(provisioner_recipe_hash)"
PROVISIONER_BIN="$PROVISIONER_CACHE/bin/local-path-provisioner"

# Go toolchain caches, outside the repository, shared between recipe versions.
export GOCACHE="${GOCACHE_OVERRIDE:-$CACHE_ROOT/go-build}"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$CACHE_ROOT/go-mod}"
export GOFLAGS="-buildvcs=false -mod=mod"
export GOTOOLCHAIN=local

# Cluster addressing.
NODE_NAME="devenv-test"
SERVICE_CIDR="10.96.0.0/16"
KUBERNETES_SVC_IP="10.96.0.1"
DNS_SVC_IP="10.96.0.10"
POD_CIDR="10.244.0.0/16"
CLUSTER_DOMAIN="cluster.local"
APISERVER_PORT=6443
ETCD_CLIENT_PORT=23790
ETCD_PEER_PORT=23800

# Images imported into containerd's k8s.io namespace.
BUSYBOX_IMAGE="devenv.test/busybox:1.35.0"
PAUSE_IMAGE="devenv.test/pause:3.10"
COREDNS_IMAGE="devenv.test/coredns:${COREDNS_VERSION#v}"
# Debian's redis-server (bookworm: 7.0.15), tagged by major version like the
# official image's `redis:7`.
REDIS_IMAGE="devenv.test/redis:7"

# Dynamic PersistentVolumes: the local-path-provisioner (a host process) and
# the default StorageClass that names it; volumes are directories under
# $LOCAL_PATH_DIR, created and removed by helper pods (busybox).
STORAGE_CLASS="local-path"
PROVISIONER_NAME="rancher.io/local-path"
PROVISIONER_NAMESPACE="local-path-storage"
LOCAL_PATH_DIR="$STATE/local-path"

CONTAINERD_ROOT="$STATE/containerd"
CONTAINERD_SOCK="$STATE/run/containerd/containerd.sock"

log() { printf '[devenv-cluster] %s\n' "$*" >&2; }
die() { printf '[devenv-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: polls COMMAND until it
# succeeds or the deadline passes.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then
      log "timed out after ${timeout}s waiting for: $what"
      return 1
    fi
    sleep 0.5
  done
}

NODE_IP="10.250.0.1"         # on the devenv0 link (a port-less bridge) that up.sh creates
NODE_LINK="devenv0"
POD_SUBNET="10.244.0.0/24"   # this node's slice of POD_CIDR (CNI host-local)
POD_GATEWAY="10.244.0.1"

# Components in start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy local-path-provisioner)

pid_of() { local f="$STATE/pids/$1.pid"; [[ -f "$f" ]] && cat "$f"; }
alive() { local p; p="$(pid_of "$1")" && [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; }

kubectl_admin() { "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig/admin.conf" "$@"; }

# cluster_lock: serializes up.sh, down.sh and test.sh runs on this machine
# (they share one state dir, one devenv0 link, one set of ports). test.sh holds
# it for its whole run, so concurrent test runs queue instead of tearing down
# each other's cluster. Started daemons must not inherit fd 9.
cluster_lock() {
  [[ -n "${DEVENV_CLUSTER_LOCK_HELD:-}" ]] && return 0
  mkdir -p "$(dirname "$STATE")"
  exec 9>"$STATE.lock"
  if ! flock -n 9; then
    log "another up/down/test run holds $STATE.lock: waiting for it"
    flock 9
  fi
  export DEVENV_CLUSTER_LOCK_HELD=1
}
