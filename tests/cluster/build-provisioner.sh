#!/usr/bin/env bash
# Builds rancher's local-path-provisioner (the dynamic PersistentVolume
# provisioner behind the cluster's default StorageClass `local-path`) from its
# Go module into its own cache entry, $PROVISIONER_CACHE, keyed by its version
# and this script (not by build.sh: the Kubernetes binaries' cache entry stays
# valid). Idempotent: an existing binary is not rebuilt.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ -x "$PROVISIONER_BIN" ]] && exit 0

export GOMAXPROCS="${GOMAXPROCS:-2}"
export CGO_ENABLED=0
# `go install module@version` builds the module with its own go.mod and go.sum
# (no wrapper module; -mod is not allowed there).
export GOFLAGS="-buildvcs=false"
work="$PROVISIONER_CACHE/work"
rm -rf "$work"
mkdir -p "$work" "$(dirname "$PROVISIONER_BIN")"
log "local-path-provisioner: building $LOCAL_PATH_PROVISIONER_VERSION into $PROVISIONER_CACHE (cold: ~3-4 minutes)"
GOBIN="$work" nice -n 19 go install -trimpath -p "$GOMAXPROCS" \
  -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION" \
  "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION"
mv "$work/local-path-provisioner" "$PROVISIONER_BIN"
rm -rf "$work"
log "local-path-provisioner: $("$PROVISIONER_BIN" --version)"
