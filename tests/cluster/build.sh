#!/usr/bin/env bash
# Builds the test cluster's binaries from Go modules into the version-keyed
# cache ($BIN). Idempotent: a component already in the cache is not rebuilt.
#
#   build.sh [k8s|coredns|pause|all]
#
# k8s:     one multi-call binary (kube-apiserver, kube-controller-manager,
#          kube-scheduler, kubelet, kube-proxy, kubeadm, kubectl) from the
#          k8s.io/kubernetes module, via a wrapper module that replaces each
#          staging module with its published v0.Y.Z release.
# coredns: CoreDNS from github.com/coredns/coredns with only the plugins the
#          test cluster needs.
# pause:   the pod sandbox entrypoint (a static binary that waits for signals).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NICE=(nice -n 19)
export GOMAXPROCS="${GOMAXPROCS:-2}"
export CGO_ENABLED=0
GO_BUILD_FLAGS=(-trimpath -p "${GOMAXPROCS}")

mkdir -p "$BIN" "$BIN_CACHE/work"

build_k8s() {
  [[ -x "$BIN/k8s" ]] && return 0
  local work="$BIN_CACHE/work/k8s"
  rm -rf "$work"; mkdir -p "$work"
  cp "$CLUSTER_DIR/src/k8s/main.go" "$work/"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local staging_version="v0.${K8S_VERSION#v1.}"
  log "k8s: resolving k8s.io/kubernetes $K8S_VERSION (staging modules at $staging_version)"
  (
    cd "$work"
    cat > go.mod <<GOMOD
module devenv.test/k8s

go 1.24.0

require k8s.io/kubernetes $K8S_VERSION
GOMOD
    go mod download -json "k8s.io/kubernetes@$K8S_VERSION" > kubernetes.json
    local kmod
    kmod="$(sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p' kubernetes.json)"
    {
      echo "replace ("
      sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging_version"'#p' "$kmod"
      echo ")"
    } >> go.mod
    "${NICE[@]}" go mod tidy
  )
  local ldflags="-s -w"
  local kv
  for kv in "gitVersion=$K8S_VERSION" "gitMajor=1" "gitMinor=$minor" \
            "gitTreeState=clean" "gitCommit=devenv-test-cluster" \
            "buildDate=1970-01-01T00:00:00Z"; do
    ldflags+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  log "k8s: building the multi-call binary (this is the slow part of a cold start)"
  (cd "$work" && "${NICE[@]}" go build "${GO_BUILD_FLAGS[@]}" -ldflags "$ldflags" -o "$BIN/k8s.tmp" .)
  mv "$BIN/k8s.tmp" "$BIN/k8s"
  local c
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubeadm kubectl; do
    ln -sf k8s "$BIN/$c"
  done
  log "k8s: $("$BIN/kubelet" --version)"
}

build_coredns() {
  [[ -x "$BIN/coredns" ]] && return 0
  local work="$BIN_CACHE/work/coredns"
  rm -rf "$work"; mkdir -p "$work"
  cp "$CLUSTER_DIR/src/coredns/main.go" "$work/"
  log "k8s: building CoreDNS $COREDNS_VERSION"
  (
    cd "$work"
    cat > go.mod <<GOMOD
module devenv.test/coredns

go 1.24.0

require github.com/coredns/coredns $COREDNS_VERSION
GOMOD
    "${NICE[@]}" go mod tidy
    "${NICE[@]}" go build "${GO_BUILD_FLAGS[@]}" -ldflags "-s -w" -o "$BIN/coredns.tmp" .
  )
  mv "$BIN/coredns.tmp" "$BIN/coredns"
}

build_pause() {
  [[ -x "$BIN/pause" ]] && return 0
  local work="$BIN_CACHE/work/pause"
  rm -rf "$work"; mkdir -p "$work"
  cp "$CLUSTER_DIR/src/pause/main.go" "$work/"
  (
    cd "$work"
    printf 'module devenv.test/pause\n\ngo 1.24.0\n' > go.mod
    "${NICE[@]}" go build "${GO_BUILD_FLAGS[@]}" -ldflags "-s -w" -o "$BIN/pause.tmp" .
  )
  mv "$BIN/pause.tmp" "$BIN/pause"
}

case "${1:-all}" in
  k8s) build_k8s ;;
  coredns) build_coredns ;;
  pause) build_pause ;;
  all) build_pause; build_k8s; build_coredns ;;
  *) die "unknown target: $1" ;;
esac
