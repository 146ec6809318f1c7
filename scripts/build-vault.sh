#!/usr/bin/env bash
# Builds HashiCorp Vault (one exact release) from its Go module, to run `vault server
# -dev` against `provider: vault`. Prints the binary's path on stdout.
#
# Used by install-test-tools.sh (the test command) for tests/tests/secret_vault.rs; the
# binary is cached by version, so only the first run builds (43 min cold on the shared
# 2-core machine under load; the Go build cache is kept with DEVENV_KEEP_GO_CACHE=1).
#
# Why v1.21.0 and not the newest v1.21.4: v1.21.4's go.mod requires vault/sdk v0.21.0,
# but its code was built against its in-repo sdk, which matches no released sdk
# (framework.Backend.ActivationFunc takes 2 arguments there as in sdk <= v0.20.0, while
# keysutil's RestorePolicy returns 2 values as in sdk >= v0.24.0), so it does not compile
# once the replace onto ./sdk is dropped. v1.21.0 requires sdk v0.20.0, which matches.
#
# Why Vault and not OpenBao: OpenBao's main module is `github.com/openbao/openbao` but its
# releases are tagged v2.x, which Go's module rules refuse for a path without `/v2`, so
# no OpenBao release can be had from the module proxy (only pseudo-versions).
#
# `go install module@version` refuses modules whose go.mod has replace directives;
# Vault's point `api` and `sdk` at sub-directories, which module zips leave out. So the
# module is copied out of the module cache, those replaces are dropped (go.mod requires
# the same modules at released versions), and it is built there. The binary is kept at
# $DEVENV_TOOLS_DIR/vault-$VERSION/vault; the Go build cache is cleaned afterwards.
set -euo pipefail

VAULT_VERSION="${VAULT_VERSION:-v1.21.0}"
TOOLS_DIR="${DEVENV_TOOLS_DIR:-$HOME/.cache/devenv-tools}"
out_dir="$TOOLS_DIR/vault-$VAULT_VERSION"
bin="$out_dir/vault"

log() { printf 'build-vault: %s\n' "$*" >&2; }

if [ -x "$bin" ]; then
    log "vault $VAULT_VERSION already in $bin"
    echo "$bin"
    exit 0
fi
if ! command -v go >/dev/null; then
    [ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || { log "go is needed (apt-get install golang-go)"; exit 1; }

work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
src="$(cd / && go mod download -json "github.com/hashicorp/vault@$VAULT_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
[ -d "$src" ] || { log "go mod download github.com/hashicorp/vault@$VAULT_VERSION failed"; exit 1; }
cp -r "$src/." "$work/"
chmod -R u+w "$work"
cd "$work"
# Drop the replaces onto sub-directories (./api, ./sdk, ./api/auth/...), keep the others.
sed -i -E '/^replace github\.com\/hashicorp\/vault\/[^ ]+ => \.\//d' go.mod
log "go build vault $VAULT_VERSION (cold: many minutes)"
start=$(date +%s)
GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 nice -n 19 go build -trimpath \
    -ldflags "-s -w" -o "$work/vault.bin" .
mkdir -p "$out_dir"
mv "$work/vault.bin" "$bin"
log "built in $(( $(date +%s) - start )) s: $bin ($(du -h "$bin" | cut -f1))"
[ -n "${DEVENV_KEEP_GO_CACHE:-}" ] || go clean -cache
echo "$bin"
