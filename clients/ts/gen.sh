#!/bin/sh
# Generates src/gen/ from proto/devenv/v1/devenv.proto with protobuf-ts, using the
# system protoc (Debian: apt-get install protobuf-compiler; it also ships
# google/protobuf/timestamp.proto under /usr/include).
#   sh gen.sh           regenerate src/gen/ in place (npm run gen)
#   sh gen.sh --check   generate into a temp dir and fail when it differs from
#                       what is committed (npm run check-gen; scripts/test.sh runs it)
set -eu
cd "$(dirname "$0")"
here="$(pwd)"
proto_root="$here/../../proto"
wkt_include="${PROTOC_INCLUDE:-/usr/include}"

if ! command -v protoc >/dev/null 2>&1; then
    echo "gen.sh: protoc not found: install it (Debian/Ubuntu: apt-get install protobuf-compiler)" >&2
    exit 1
fi
if [ ! -f "$wkt_include/google/protobuf/timestamp.proto" ]; then
    echo "gen.sh: $wkt_include/google/protobuf/timestamp.proto not found: install protobuf-compiler (or set PROTOC_INCLUDE)" >&2
    exit 1
fi
plugin="$here/node_modules/.bin/protoc-gen-ts"
if [ ! -x "$plugin" ]; then
    echo "gen.sh: $plugin not found: run 'npm ci' in clients/ts first" >&2
    exit 1
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# long_type_number: uint64 counters (bytes, connections, missed lines) as JS
# numbers; they stay far below 2^53 and numbers survive JSON.stringify.
protoc \
    --plugin=protoc-gen-ts="$plugin" \
    --ts_out="$out" \
    --ts_opt=long_type_number,output_typescript \
    -I "$proto_root" -I "$wkt_include" \
    "$proto_root/devenv/v1/devenv.proto"

if [ "${1:-}" = "--check" ]; then
    if ! diff -ru "$here/src/gen" "$out"; then
        echo "gen.sh: clients/ts/src/gen is stale: run 'cd clients/ts && npm ci && npm run gen' and commit the result" >&2
        exit 1
    fi
    echo "gen.sh: clients/ts/src/gen matches proto/devenv/v1/devenv.proto"
else
    rm -rf "$here/src/gen"
    mkdir -p "$here/src"
    cp -R "$out" "$here/src/gen"
    echo "gen.sh: wrote $(find "$here/src/gen" -name '*.ts' | wc -l) files to clients/ts/src/gen"
fi
