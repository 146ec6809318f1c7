#!/usr/bin/env bash
# Runs every grpcurl recipe of docs/grpcurl.md against a real devenvd serving the
# quickstart example, so the recipes cannot rot. Each block marked
# `<!-- recipe: NAME -->` is taken from the page as written, run with bash from a copy
# of the example (after the `socket` recipe, which resolves the socket path), and what
# it answers is checked below; a recipe without a check here fails the script.
#
# Uses: target/debug/devenvd (DEVENVD overrides), grpcurl (GRPCURL, default the tools
# cache), jq, curl, python3. Own HOME, XDG_RUNTIME_DIR and data dir; free ports.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${DEVENV_TOOLS_DIR:-$HOME/.cache/devenv-tools}"
GRPCURL="${GRPCURL:-$tools/bin/grpcurl}"
DEVENVD="${DEVENVD:-$root/target/debug/devenvd}"
doc="$root/docs/grpcurl.md"

fail() { printf 'test-grpcurl: FAIL: %s\n' "$*" >&2; exit 1; }
log() { printf 'test-grpcurl: %s\n' "$*" >&2; }

for tool in jq curl python3; do
    command -v "$tool" >/dev/null || fail "$tool not found (scripts/install-test-tools.sh installs it)"
done
[ -x "$GRPCURL" ] || fail "grpcurl not found at $GRPCURL (run scripts/install-test-tools.sh)"
[ -x "$DEVENVD" ] || fail "devenvd not found at $DEVENVD (cargo build -p devenvd)"

tmp="$(mktemp -d)"
daemon_pid=""
bg_pids=()
cleanup() {
    for p in "${bg_pids[@]}"; do kill -- "-$p" 2>/dev/null || true; done
    if [ -n "$daemon_pid" ]; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# grpcurl by the name the recipes use.
mkdir -p "$tmp/bin"
ln -s "$GRPCURL" "$tmp/bin/grpcurl"
export PATH="$tmp/bin:$PATH"

# An isolated world. DEVENV_SOCKET stays unset so the recipe's fallback to
# $XDG_RUNTIME_DIR is what finds the socket, as devenvd resolves it.
unset DEVENV_SOCKET
export HOME="$tmp/home" XDG_RUNTIME_DIR="$tmp/run" DEVENV_DATA_DIR="$tmp/data"
mkdir -p "$HOME"
mkdir -m 700 "$XDG_RUNTIME_DIR"
read -r QUICKSTART_DB_PORT QUICKSTART_API_PORT QUICKSTART_WEB_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
export QUICKSTART_DB_PORT QUICKSTART_API_PORT QUICKSTART_WEB_PORT
cp -r "$root/examples/quickstart" "$tmp/project"

# The recipes, as written in the doc.
mkdir -p "$tmp/recipes"
python3 - "$doc" "$tmp/recipes" <<'EOF'
import re, sys, pathlib
text = pathlib.Path(sys.argv[1]).read_text()
found = re.findall(r"<!-- recipe: ([a-z-]+) -->\n```sh\n(.*?)```", text, re.S)
if not found:
    sys.exit("no recipes found")
for name, body in found:
    path = pathlib.Path(sys.argv[2]) / f"{name}.sh"
    if path.exists():
        sys.exit(f"recipe {name} appears twice")
    path.write_text(body)
print(" ".join(n for n, _ in found))
EOF
recipes="$(ls "$tmp/recipes" | sed 's/\.sh$//' | tr '\n' ' ')"
log "recipes: $recipes"

# Runs recipe $1 the way a user pastes it: the socket lines, then the recipe, from the
# project directory, with pipefail so a failing grpcurl fails the recipe.
run() {
    (cd "$tmp/project" && bash -eo pipefail -c "$(cat "$tmp/recipes/socket.sh")
$(cat "$tmp/recipes/$1.sh")")
}

# Starts recipe $1 in the background (its own process group), output to $tmp/$1.out.
run_bg() {
    set -m
    run "$1" >"$tmp/$1.out" 2>"$tmp/$1.err" &
    bg_pids+=("$!")
    set +m
}

# Polls (deadline $2 s) until file $1 matches the extended regex $3.
wait_for() {
    local file="$1" deadline=$((SECONDS + $2)) re="$3"
    until grep -Eq -- "$re" "$file" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || fail "no /$re/ in $file after $2 s: $(tail -c 2000 "$file" 2>/dev/null)"
        sleep 0.05
    done
}

stop_bg() {
    local p="${bg_pids[-1]}"
    kill -- "-$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset 'bg_pids[-1]'
}

checked=" "
check_done() { checked="$checked$1 "; log "ok: $1"; }

# --- socket: the recipe resolves the socket exactly as crates/api does (same order)
sock_of() { env -i PATH="$PATH" HOME="$HOME" "$@" bash -c "$(cat "$tmp/recipes/socket.sh")"'
printf %s "$SOCK"'; }
[ "$(sock_of DEVENV_SOCKET=/x/s.sock XDG_RUNTIME_DIR=/run/user/7)" = /x/s.sock ] || fail "socket: DEVENV_SOCKET must win"
[ "$(sock_of XDG_RUNTIME_DIR=/run/user/7)" = /run/user/7/devenv/devenvd.sock ] || fail "socket: XDG_RUNTIME_DIR"
[ "$(sock_of DEVENV_SOCKET= XDG_RUNTIME_DIR=)" = "/tmp/devenv-$(id -u)/devenvd.sock" ] || fail "socket: fallback (empty = unset)"
check_done socket

# --dashboard-port 0: its web dashboard on any free port, not the user's 7420.
"$DEVENVD" --log-file "$tmp/devenvd.log" --dashboard-port 0 &
daemon_pid=$!
sock="$XDG_RUNTIME_DIR/devenv/devenvd.sock"
deadline=$((SECONDS + 30))
until [ -S "$sock" ]; do
    kill -0 "$daemon_pid" 2>/dev/null || fail "devenvd exited: $(tail -5 "$tmp/devenvd.log")"
    [ "$SECONDS" -lt "$deadline" ] || fail "devenvd did not create $sock in 30 s"
    sleep 0.05
done

# --- version: daemon version, health, reflection
out="$(run version)"
echo "$out" | grep -q '"protocolVersion": 1' || fail "version: $out"
echo "$out" | grep -q '"status": "SERVING"' || fail "version: health: $out"
echo "$out" | grep -qx 'devenv.v1.EnvironmentService' || fail "version: list: $out"
echo "$out" | grep -q 'rpc Watch ( .devenv.v1.WatchRequest ) returns ( stream .devenv.v1.ServiceStatus )' ||
    fail "version: describe: $out"
check_done version

# --- up: streams progress, ends with result.ok
out="$(run up)"
echo "$out" | jq -se 'last | .result.ok == true' >/dev/null || fail "up did not end ok: $out"
echo "$out" | jq -se '[.[] | select(.service.state == "SERVICE_STATE_READY") | .service.name] | unique == ["api","db","web"]' >/dev/null ||
    fail "up: not every service reported ready: $(echo "$out" | jq -sc "[.[] | .service | select(.) | [.name, .state]]")"
check_done up

# --- status
out="$(run status)"
echo "$out" | jq -e '[.services[] | select(.state == "SERVICE_STATE_READY") | .name] | sort == ["api","db","web"]' >/dev/null ||
    fail "status: $out"
old_pid="$(echo "$out" | jq -r '.services[] | select(.name == "api") | .pid')"
check_done status
out="$(run status-states)"
[ "$(echo "$out" | sort)" = "$(printf 'api SERVICE_STATE_READY\ndb SERVICE_STATE_READY\nweb SERVICE_STATE_READY')" ] ||
    fail "status-states: $out"
check_done status-states

# --- watch (snapshot first), then restart: watch sees api restart, restart answers a new pid
run_bg watch
wait_for "$tmp/watch.out" 30 '"name": "web"'
out="$(run restart)"
new_pid="$(echo "$out" | jq -r '.services[] | select(.name == "api") | .pid')"
[ -n "$new_pid" ] && [ "$new_pid" != null ] && [ "$new_pid" != "$old_pid" ] ||
    fail "restart: api pid $old_pid -> $new_pid: $out"
check_done restart
wait_for "$tmp/watch.out" 30 "\"pid\": $new_pid"
stop_bg
check_done watch

# --- logs-follow: the tail, then a line api writes after the stream started
run_bg logs-follow
wait_for "$tmp/logs-follow.out" 30 '"service": "api"'
marker="grpcurl-recipe-$RANDOM$RANDOM"
curl -s -o /dev/null "http://127.0.0.1:$QUICKSTART_API_PORT/$marker" || fail "api not reachable on $QUICKSTART_API_PORT"
wait_for "$tmp/logs-follow.out" 30 "GET /$marker "
stop_bg
check_done logs-follow

# --- exec: a bidi stream; pwd in api's workdir (the project), then exit 3
out="$(run exec)"
echo "$out" | jq -se 'last | .exit.code == 3' >/dev/null || fail "exec: no exit code 3: $out"
printed="$(echo "$out" | jq -rsj '[.[] | .stdout // empty | @base64d] | join("")')"
[ "$printed" = "$(cd "$tmp/project" && pwd -P)" ] || fail "exec: printed '$printed', not the project dir: $out"
check_done exec

# --- stop: db stopped by the user, api and web waiting for it
out="$(run stop)"
echo "$out" | jq -e '[.services[] | select(.name == "db") | .state] == ["SERVICE_STATE_STOPPED"]' >/dev/null ||
    fail "stop: db not stopped: $out"
echo "$out" | jq -e '[.services[] | select(.state == "SERVICE_STATE_PENDING") | .name] | sort == ["api","web"]' >/dev/null ||
    fail "stop: api and web not waiting: $out"
check_done stop

# --- start: db and the services that waited for it are ready again
out="$(run start)"
echo "$out" | jq -se 'last | .result.ok == true' >/dev/null || fail "start did not end ok: $out"
out="$(run status-states)"
[ "$(echo "$out" | sort)" = "$(printf 'api SERVICE_STATE_READY\ndb SERVICE_STATE_READY\nweb SERVICE_STATE_READY')" ] ||
    fail "start: not all ready after it: $out"
check_done start

# --- scale: the quickstart's web is local, so the recipe's answer is the refusal
if out="$(run scale 2>&1)"; then
    fail "scale of a local service answered ok: $out"
fi
echo "$out" | grep -q 'FailedPrecondition' || fail "scale: not FailedPrecondition: $out"
echo "$out" | grep -qi 'one instance' || fail "scale: does not say why: $out"
check_done scale

# --- down
out="$(run down)"
echo "$out" | jq -e '.stopped | sort == ["api","db","web"]' >/dev/null || fail "down: $out"
check_done down

for r in $recipes; do
    case "$checked" in *" $r "*) ;; *) fail "recipe $r in docs/grpcurl.md has no check in scripts/test-grpcurl.sh" ;; esac
done
log "all ${recipes% } recipes passed"
