#!/usr/bin/env bash
# Installs code-server (VS Code in a browser, with its real Node extension host) for the
# VS Code extension's tests, into a cache dir outside the repo keyed by version:
#   $DEVENV_TOOLS_DIR/code-server-$CODE_SERVER_VERSION   (default ~/.cache/devenv-tools)
# and prints nothing but log lines on stderr. Called by scripts/install-test-tools.sh.
#
# Why not `npm install code-server`: its postinstall fetches @vscode/proxy-agent as a
# git dependency (git+ssh to GitHub) and @vscode/ripgrep downloads its binary from
# GitHub releases. Instead (steps below): install with --ignore-scripts, build the
# native modules against the local Node headers, point the git entry at the same
# version's registry tarball (same sha512), use Debian's ripgrep, and do the rest of
# code-server's postinstall.sh by hand.
#
# code-server 4.96.4 is VS Code 1.96.4 and needs Node 20 (newer ones need Node 24).
# Debian packages: build-essential + python3 (node-gyp), libkrb5-dev (kerberos),
# ripgrep (search), chromium (the tests' browser, driven by playwright-core).
set -euo pipefail

CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.96.4}"
# The version lib/vscode's shrinkwrap pins as a git commit; its registry tarball has
# the same integrity hash (checked by npm against the shrinkwrap).
PROXY_AGENT_VERSION=0.27.0
TOOLS_DIR="${DEVENV_TOOLS_DIR:-$HOME/.cache/devenv-tools}"
dest="$TOOLS_DIR/code-server-$CODE_SERVER_VERSION"

log() { printf 'install-code-server: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root for: $*"; return 1
    fi
}

# --- Debian packages (only the missing ones)
pkgs=()
dpkg -s build-essential >/dev/null 2>&1 || pkgs+=(build-essential)
command -v python3 >/dev/null || pkgs+=(python3)
dpkg -s libkrb5-dev >/dev/null 2>&1 || pkgs+=(libkrb5-dev)
[ -x /usr/bin/rg ] || pkgs+=(ripgrep)
[ -x /usr/bin/chromium ] || pkgs+=(chromium)
command -v node >/dev/null || pkgs+=(nodejs npm)
if [ "${#pkgs[@]}" -gt 0 ]; then
    log "apt-get install ${pkgs[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" != 20 ]; then
    log "code-server $CODE_SERVER_VERSION needs Node 20; this machine has $(node --version)"
    exit 1
fi

stamp="$dest/.installed"
if [ -f "$stamp" ]; then
    log "code-server $CODE_SERVER_VERSION already in $dest"
    exit 0
fi

# Build in a scratch dir beside the destination, then rename: an interrupted install
# never looks finished.
mkdir -p "$TOOLS_DIR"
work="$(mktemp -d "$TOOLS_DIR/.code-server-$CODE_SERVER_VERSION.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

# node-gyp builds against the installed Node's headers instead of downloading them.
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
npm_q=(--no-audit --no-fund --loglevel=error)

log "npm install --ignore-scripts code-server@$CODE_SERVER_VERSION -> $dest"
(cd "$work" && echo '{"private":true}' >package.json &&
    npm install "${npm_q[@]}" --ignore-scripts "code-server@$CODE_SERVER_VERSION")
cs="$work/node_modules/code-server"

# argon2 (password hashing) is loaded even with --auth none.
log "npm rebuild argon2"
(cd "$work" && npm rebuild "${npm_q[@]}" argon2)

log "lib/vscode: @vscode/proxy-agent from the registry instead of git"
vs="$cs/lib/vscode"
node - "$vs/npm-shrinkwrap.json" "$PROXY_AGENT_VERSION" <<'EOF'
const fs = require("fs");
const [file, version] = process.argv.slice(2);
const wrap = JSON.parse(fs.readFileSync(file, "utf8"));
const entry = wrap.packages["node_modules/@vscode/proxy-agent"];
if (!entry || entry.version !== version) {
  console.error(`unexpected @vscode/proxy-agent entry in ${file}: ${JSON.stringify(entry)}`);
  process.exit(1);
}
entry.resolved = `https://registry.npmjs.org/@vscode/proxy-agent/-/proxy-agent-${version}.tgz`;
fs.writeFileSync(file, JSON.stringify(wrap, null, 2) + "\n");
EOF

log "lib/vscode: npm install --omit=dev --ignore-scripts"
(cd "$vs" && npm install "${npm_q[@]}" --omit=dev --ignore-scripts)
log "lib/vscode: rebuilding the native modules"
(cd "$vs" && npm rebuild "${npm_q[@]}" @parcel/watcher @vscode/deviceid @vscode/spdlog kerberos native-watchdog node-pty)

# @vscode/ripgrep's postinstall would download rg from GitHub.
mkdir -p "$vs/node_modules/@vscode/ripgrep/bin"
ln -sf /usr/bin/rg "$vs/node_modules/@vscode/ripgrep/bin/rg"

# The rest of code-server's postinstall.sh (vscode_install), by hand.
ln -sfn node_modules "$vs/node_modules.asar"
ln -sfn code-linux.sh "$vs/bin/remote-cli/code-server"
ln -sfn browser-linux.sh "$vs/bin/helpers/browser.sh"
log "lib/vscode/extensions: npm install --omit=dev"
(cd "$vs/extensions" && npm install "${npm_q[@]}" --omit=dev --ignore-scripts && node ./postinstall.mjs >/dev/null)

# Smoke check: it loads and prints its version (the workbench itself is exercised by
# the extension's tests).
log "code-server --version: $(HOME="$work/.home" XDG_CONFIG_HOME="$work/.home" XDG_DATA_HOME="$work/.home" \
    node "$cs/out/node/entry.js" --version | tail -1)"
rm -rf "$work/.home"

rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
date -u +%FT%TZ >"$stamp"
log "code-server $CODE_SERVER_VERSION installed in $dest ($(($(date +%s) - start)) s, $(du -sh "$dest" | cut -f1))"
