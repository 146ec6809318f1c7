#!/usr/bin/env bash
# Builds the test cluster's container images as OCI image-layout tarballs in
# the version-keyed cache ($BIN_CACHE/images), without any container engine
# or registry: a rootfs directory, one uncompressed reproducible tar layer, a
# config and a manifest, written by hand. Idempotent.
#
#   busybox: Debian's busybox-static (sh, tar, httpd, nc, nslookup, wget, ...)
#   pause:   the pod sandbox image (containerd's sandbox_image); its
#            entrypoint /pause only waits for a signal (src/pause)
#   coredns: the cluster DNS server built by build.sh (src/coredns)
#   redis:   Debian's redis-server and redis-cli with the shared libraries they
#            need, laid out like the official `redis` image (see redis_image)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mkdir -p "$IMAGES"

sha() { sha256sum "$1" | cut -d' ' -f1; }

# make_image NAME REF ROOTFS CONFIG_JSON: writes $IMAGES/NAME.tar.
# CONFIG_JSON is the image config's "config" object (Entrypoint, Cmd, Env...).
make_image() {
  local name="$1" ref="$2" rootfs="$3" config="$4"
  local out="$IMAGES/$name.tar"
  [[ -f "$out" ]] && return 0
  local dir; dir="$(mktemp -d "$IMAGES/.build-$name.XXXXXX")"
  mkdir -p "$dir/oci/blobs/sha256"
  tar --create --file "$dir/layer.tar" --directory "$rootfs" \
      --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .
  local layer_digest layer_size
  layer_digest="$(sha "$dir/layer.tar")"; layer_size="$(stat -c %s "$dir/layer.tar")"
  mv "$dir/layer.tar" "$dir/oci/blobs/sha256/$layer_digest"

  printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"devenv tests/cluster/images.sh"}]}' \
    "$config" "$layer_digest" > "$dir/config.json"
  local config_digest config_size
  config_digest="$(sha "$dir/config.json")"; config_size="$(stat -c %s "$dir/config.json")"
  mv "$dir/config.json" "$dir/oci/blobs/sha256/$config_digest"

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" > "$dir/manifest.json"
  local manifest_digest manifest_size
  manifest_digest="$(sha "$dir/manifest.json")"; manifest_size="$(stat -c %s "$dir/manifest.json")"
  mv "$dir/manifest.json" "$dir/oci/blobs/sha256/$manifest_digest"

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$ref" "${ref##*:}" > "$dir/oci/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci/oci-layout"

  tar --create --file "$out.tmp" --directory "$dir/oci" \
      --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$dir"
  log "image $ref -> $out"
}

base_rootfs() {
  local root="$1"
  mkdir -p "$root"/{bin,etc,tmp,root,proc,sys,dev,var/www,var/run}
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
}

busybox_image() {
  [[ -f "$IMAGES/busybox.tar" ]] && return 0
  local bb=/bin/busybox
  [[ -x "$bb" ]] && "$bb" --list >/dev/null 2>&1 || die "busybox-static is not installed ($bb)"
  local root; root="$(mktemp -d)"
  base_rootfs "$root"
  cp "$bb" "$root/bin/busybox"
  local applet
  for applet in $("$bb" --list); do
    [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
  done
  echo 'devenv test cluster busybox' > "$root/var/www/index.html"
  make_image busybox "$BUSYBOX_IMAGE" "$root" \
    '{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/"}'
  rm -rf "$root"
}

pause_image() {
  [[ -f "$IMAGES/pause.tar" ]] && return 0
  local root; root="$(mktemp -d)"
  mkdir -p "$root"
  cp "$BIN/pause" "$root/pause"
  make_image pause "$PAUSE_IMAGE" "$root" \
    '{"Env":["PATH=/"],"Entrypoint":["/pause"],"User":"65535:65535","WorkingDir":"/"}'
  rm -rf "$root"
}

coredns_image() {
  [[ -f "$IMAGES/coredns.tar" ]] && return 0
  local root; root="$(mktemp -d)"
  mkdir -p "$root/etc" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp "$BIN/coredns" "$root/coredns"
  make_image coredns "$COREDNS_IMAGE" "$root" \
    '{"Env":["PATH=/"],"Entrypoint":["/coredns"],"ExposedPorts":{"53/tcp":{},"53/udp":{},"8080/tcp":{},"8181/tcp":{}},"WorkingDir":"/"}'
  rm -rf "$root"
}

# copy_with_libs ROOT BINARY DEST: copies BINARY to ROOT/DEST, and every
# shared library it loads (ldd), the dynamic loader included, to the same path
# under ROOT.
copy_with_libs() {
  local root="$1" bin="$2" dest="$3" lib
  install -D -m 0755 "$(readlink -f "$bin")" "$root$dest"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    [[ -e "$root$lib" ]] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}

# redis: what the official `redis` image offers a test, from Debian packages:
# redis-server, redis-cli (and redis-benchmark, redis-check-aof,
# redis-check-rdb, redis-sentinel) on PATH in /usr/local/bin, the
# docker-entrypoint.sh that prefixes redis-server to an argument list that
# starts with an option or a .conf file, workdir /data (writable, a volume),
# and protected mode off by default (the official image compiles it off), so
# pods can connect without a password. Debian's build is dynamically linked:
# its libraries and the loader go in at their host paths. busybox provides sh
# and the usual tools. Runs as root (the official image drops to uid 999).
redis_image() {
  [[ -f "$IMAGES/redis.tar" ]] && return 0
  local server cli bench
  server="$(command -v redis-server)" || die "redis-server is not installed (Debian package redis-server)"
  cli="$(command -v redis-cli)" || die "redis-cli is not installed (Debian package redis-tools)"
  bench="$(command -v redis-benchmark || true)"
  local version; version="$("$server" --version | sed -n 's/.* v=\([0-9.]*\) .*/\1/p')"
  [[ "${version%%.*}" == "${REDIS_IMAGE##*:}" ]] \
    || log "warning: Debian's redis-server is $version; the image is still tagged $REDIS_IMAGE"
  local root; root="$(mktemp -d)"
  base_rootfs "$root"
  printf 'redis:x:999:999::/home/redis:/bin/sh\n' >> "$root/etc/passwd"
  printf 'redis:x:999:\n' >> "$root/etc/group"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
  done
  copy_with_libs "$root" "$server" /usr/local/libexec/redis-server
  copy_with_libs "$root" "$cli" /usr/local/bin/redis-cli
  [[ -n "$bench" ]] && copy_with_libs "$root" "$bench" /usr/local/bin/redis-benchmark
  # The server binary picks its mode from argv[0], as in the official image.
  local tool
  for tool in redis-check-aof redis-check-rdb redis-sentinel; do
    ln -s ../libexec/redis-server "$root/usr/local/bin/$tool"
  done
  cat > "$root/usr/local/bin/redis-server" <<'SH'
#!/bin/sh
# Debian's redis-server with the official image's default of protected mode
# off; an explicit --protected-mode, or one in the config file, still wins.
real=/usr/local/libexec/redis-server
case "${1-}" in
  -v|--version|-h|--help|--test-memory|--check-system) exec "$real" "$@" ;;
  ''|-?*) exec "$real" --protected-mode no "$@" ;;
esac
conf="$1"; shift
if [ "$conf" != - ] && grep -qs '^[[:space:]]*protected-mode' "$conf"; then
  exec "$real" "$conf" "$@"
fi
exec "$real" "$conf" --protected-mode no "$@"
SH
  cat > "$root/usr/local/bin/docker-entrypoint.sh" <<'SH'
#!/bin/sh
set -e
# As the official image: an argument list that starts with an option or a
# .conf file is for redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
exec "$@"
SH
  chmod 0755 "$root/usr/local/bin/redis-server" "$root/usr/local/bin/docker-entrypoint.sh"
  install -d -m 0777 "$root/data"
  make_image redis "$REDIS_IMAGE" "$root" \
    '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":["docker-entrypoint.sh"],"Cmd":["redis-server"],"ExposedPorts":{"6379/tcp":{}},"Volumes":{"/data":{}},"WorkingDir":"/data"}'
  rm -rf "$root"
}

case "${1:-all}" in
  busybox) busybox_image ;;
  pause) pause_image ;;
  coredns) coredns_image ;;
  redis) redis_image ;;
  all) busybox_image; pause_image; coredns_image; redis_image ;;
  *) die "unknown image: $1" ;;
esac
