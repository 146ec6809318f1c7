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

case "${1:-all}" in
  busybox) busybox_image ;;
  pause) pause_image ;;
  coredns) coredns_image ;;
  all) busybox_image; pause_image; coredns_image ;;
  *) die "unknown image: $1" ;;
esac
