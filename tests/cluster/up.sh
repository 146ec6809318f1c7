#!/usr/bin/env bash
# Starts the devenv single-node test cluster (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd + runc, kubelet,
# kube-proxy, local-path-provisioner with the default StorageClass
# `local-path`, CoreDNS), building its binaries and images first if they are
# not in the cache yet. Prints `export KUBECONFIG=...` on stdout (progress goes to
# stderr), so `eval "$(tests/cluster/up.sh)"` works.
#
# Idempotent: if the cluster is already up it says so and exits 0. A cluster
# left half-up (crash, reboot) is cleaned with down.sh first.
#
# Environment:
#   DEVENV_CLUSTER_CACHE  build cache (default ~/.cache/devenv-test-cluster)
#   DEVENV_CLUSTER_STATE  runtime state: certs, etcd, logs, pids, kubeconfig
#                         (default /var/tmp/devenv-test-cluster)
#   DEVENV_CLUSTER_KEEP_ON_FAILURE=1  leave a failed start up for debugging
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null || die "must run as root (it mounts, configures networking and runs containerd)"
  exec sudo --preserve-env=DEVENV_CLUSTER_CACHE,DEVENV_CLUSTER_STATE,DEVENV_CLUSTER_KEEP_ON_FAILURE,HOME "$0" "$@"
fi

cluster_lock
START=$SECONDS
KUBECONFIG_OUT="$STATE/kubeconfig/admin.conf"

print_export() { echo "export KUBECONFIG=$KUBECONFIG_OUT"; }

cluster_healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  [[ -x "$STATE/bin/kubectl" ]] || return 1
  "$STATE/bin/kubectl" --kubeconfig "$KUBECONFIG_OUT" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

# --- already up? ------------------------------------------------------------
if [[ -e "$STATE" ]]; then
  if [[ -d "$STATE/pids" ]] && cluster_healthy; then
    log "cluster is already up (state: $STATE)"
    print_export
    exit 0
  fi
  log "found a stale or half-started cluster in $STATE: cleaning it up first"
  "$CLUSTER_DIR/down.sh"
fi

on_failure() {
  local rc=$?
  trap - ERR EXIT
  [[ $rc -eq 0 ]] && return
  log "up.sh failed (exit $rc) at line ${FAILED_LINE:-?}; last log lines of each component:"
  local f
  for f in "$STATE"/logs/*.log; do
    [[ -f "$f" ]] || continue
    printf '\n===== %s =====\n' "$f" >&2
    tail -n 15 "$f" >&2
  done
  # Keep the logs of the failed start: down.sh deletes the state dir.
  rm -rf "$STATE.failed-logs"
  cp -r "$STATE/logs" "$STATE.failed-logs" 2>/dev/null && log "logs of this failed start: $STATE.failed-logs"
  if [[ "${DEVENV_CLUSTER_KEEP_ON_FAILURE:-0}" == 1 ]]; then
    log "DEVENV_CLUSTER_KEEP_ON_FAILURE=1: leaving the cluster as it is; run down.sh to clean up"
  else
    "$CLUSTER_DIR/down.sh" || true
  fi
  exit "$rc"
}
trap 'FAILED_LINE=$LINENO' ERR
trap on_failure EXIT

# --- host packages -------------------------------------------------------------
need_pkgs=()
command -v containerd >/dev/null || need_pkgs+=(containerd)
command -v runc >/dev/null || need_pkgs+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback && -x /usr/lib/cni/portmap ]] \
  || need_pkgs+=(containernetworking-plugins)
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v conntrack >/dev/null || need_pkgs+=(conntrack)
[[ -x /bin/busybox ]] && /bin/busybox --list 2>/dev/null | grep -qx httpd || need_pkgs+=(busybox-static)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v nsenter >/dev/null || need_pkgs+=(util-linux)
# For the image devenv.test/redis:7 (images.sh); not run on the host.
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v redis-cli >/dev/null || need_pkgs+=(redis-tools)
if (( ${#need_pkgs[@]} )); then
  log "installing host packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # policy-rc.d exit 101: the packages must not start their own daemons.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; created_policy=1; fi
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
  (( created_policy )) && rm -f $policy
fi
command -v go >/dev/null || die "Go is required to build the cluster binaries (go 1.24 or newer)"

# --- build (cached) ---------------------------------------------------------------
if [[ ! -x "$BIN/k8s" || ! -x "$BIN/coredns" || ! -x "$BIN/pause" ]]; then
  log "building cluster binaries into $BIN_CACHE (cold build: 20-40 minutes on 2 cores)"
fi
"$CLUSTER_DIR/build.sh" all
"$CLUSTER_DIR/build-provisioner.sh"
"$CLUSTER_DIR/images.sh" all

# --- state, network, certificates ----------------------------------------------------
rm -rf "$STATE"
mkdir -p "$STATE"/{pids,logs,pki,kubeconfig,etcd,config,cni/net.d,cni/ipam,kubelet,run/containerd,run/runc,saved}
ln -sfn "$BIN" "$STATE/bin"
chmod 700 "$STATE/etcd"

# sysctls the cluster needs; down.sh restores the saved values.
for s in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables; do
  sysctl -n "$s" > "$STATE/saved/$s" 2>/dev/null || true
done
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 || die "br_netfilter is not available (net.bridge.bridge-nf-call-iptables)"
sysctl -qw net.bridge.bridge-nf-call-ip6tables=1 || true

# The node address lives on a port-less bridge: it is a local address that
# depends on nothing in the host's own network setup. Traffic to a service IP
# that kube-proxy did not translate is routed into that bridge and dropped,
# never to the default gateway.
ip link add "$NODE_LINK" type bridge
ip addr add "$NODE_IP/32" dev "$NODE_LINK"
ip link set "$NODE_LINK" up
ip route add "$SERVICE_CIDR" dev "$NODE_LINK"
ip route add "$POD_CIDR" dev "$NODE_LINK"

# Forwarding for the pods, whatever else runs on the host: Docker sets the FORWARD
# policy to DROP when it starts (the container tests start dockerd), which drops
# pod-to-pod traffic bridged through netfilter (CoreDNS lookups time out). The
# chain's CNI- prefix makes down.sh remove it with the rest of the cluster's rules.
if command -v iptables >/dev/null; then
  iptables -N CNI-DEVENV-FORWARD 2>/dev/null || iptables -F CNI-DEVENV-FORWARD
  iptables -A CNI-DEVENV-FORWARD -s "$POD_CIDR" -j ACCEPT
  iptables -A CNI-DEVENV-FORWARD -d "$POD_CIDR" -j ACCEPT
  iptables -C FORWARD -j CNI-DEVENV-FORWARD 2>/dev/null || iptables -I FORWARD 1 -j CNI-DEVENV-FORWARD
fi

cat > "$STATE/config/kubeadm.yaml" <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $NODE_IP
  bindPort: $APISERVER_PORT
nodeRegistration:
  name: $NODE_NAME
  criSocket: unix://$CONTAINERD_SOCK
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: devenv-test
kubernetesVersion: $K8S_VERSION
certificatesDir: $STATE/pki
controlPlaneEndpoint: $NODE_IP:$APISERVER_PORT
apiServer:
  certSANs: [127.0.0.1, localhost, $NODE_IP]
networking:
  serviceSubnet: $SERVICE_CIDR
  podSubnet: $POD_CIDR
  dnsDomain: $CLUSTER_DOMAIN
EOF
log "generating certificates and kubeconfigs (kubeadm init phase certs/kubeconfig)"
"$BIN/kubeadm" init phase certs all --config "$STATE/config/kubeadm.yaml" > "$STATE/logs/kubeadm.log" 2>&1
"$BIN/kubeadm" init phase kubeconfig all --config "$STATE/config/kubeadm.yaml" \
  --kubeconfig-dir "$STATE/kubeconfig" >> "$STATE/logs/kubeadm.log" 2>&1
"$BIN/kubeadm" kubeconfig user --config "$STATE/config/kubeadm.yaml" --client-name system:kube-proxy \
  > "$STATE/kubeconfig/kube-proxy.conf" 2>> "$STATE/logs/kubeadm.log"
chmod 644 "$STATE/kubeconfig/admin.conf"

# start NAME CMD...: a detached background process with a pid file and a log.
start() {
  local name="$1"; shift
  setsid "$@" > "$STATE/logs/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$STATE/pids/$name.pid"
  log "started $name (pid $!)"
}
# running NAME: the process is still alive (fail fast instead of waiting out a deadline).
running() { alive "$1" || { log "$1 exited; see $STATE/logs/$1.log"; return 2; }; }
wait_component() {  # wait_component NAME TIMEOUT CHECK...
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    running "$name" || return 1
    (( SECONDS < deadline )) || { log "timed out after ${timeout}s waiting for $name"; return 1; }
    sleep 0.3
  done
}
PKI="$STATE/pki"
KC="$STATE/kubeconfig"

# --- etcd --------------------------------------------------------------------------
start etcd "$BIN/etcd" --name devenv-test --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "devenv-test=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --snapshot-count 10000 --quota-backend-bytes 2147483648 --log-level warn
etcd_healthy() { [[ "$(curl_local "http://127.0.0.1:$ETCD_CLIENT_PORT/health")" == *'"health":"true"'* ]]; }
curl_local() (  # tiny HTTP GET without curl: bash /dev/tcp on loopback (a subshell)
  url="$1"
  hostport="${url#http://}"; path="/${hostport#*/}"; hostport="${hostport%%/*}"
  exec 3<>"/dev/tcp/${hostport%:*}/${hostport#*:}" || exit 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
  timeout 5 cat <&3
)
wait_component etcd 60 etcd_healthy

# --- control plane ------------------------------------------------------------------
start kube-apiserver "$BIN/kube-apiserver" \
  --advertise-address "$NODE_IP" --bind-address "$NODE_IP" --secure-port "$APISERVER_PORT" \
  --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --client-ca-file "$PKI/ca.crt" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP,Hostname \
  --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
  --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-extra-headers-prefix X-Remote-Extra- --requestheader-group-headers X-Remote-Group \
  --requestheader-username-headers X-Remote-User \
  --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --profiling=false --v=1
wait_component kube-apiserver 120 "$BIN/kubectl" --kubeconfig "$KC/super-admin.conf" --request-timeout=5s get --raw /readyz

# RBAC that `kubeadm init` would create: admin.conf's group is bound to
# cluster-admin, and the apiserver's kubelet client (same group) may call the
# kubelet API (exec, logs, port-forward).
cat > "$STATE/config/bootstrap-rbac.yaml" <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubeadm:cluster-admins"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "kubeadm:cluster-admins"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "devenv:kube-apiserver-kubelet-client"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kubelet-api-admin"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}]
EOF
"$BIN/kubectl" --kubeconfig "$KC/super-admin.conf" apply -f "$STATE/config/bootstrap-rbac.yaml" > /dev/null

start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$KC/controller-manager.conf" \
  --authentication-kubeconfig "$KC/controller-manager.conf" --authorization-kubeconfig "$KC/controller-manager.conf" \
  --bind-address 127.0.0.1 --leader-elect=false \
  --client-ca-file "$PKI/ca.crt" --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
  --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --use-service-account-credentials=true --controllers '*,bootstrapsigner,tokencleaner' \
  --cluster-name devenv-test --service-cluster-ip-range "$SERVICE_CIDR" \
  --profiling=false --v=1
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$KC/scheduler.conf" \
  --authentication-kubeconfig "$KC/scheduler.conf" --authorization-kubeconfig "$KC/scheduler.conf" \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1

# --- containerd ------------------------------------------------------------------------
# Registries: no `config_path`/hosts.toml here on purpose. Without one, the CRI plugin
# (containerd 1.6/1.7, pkg/cri/server/image_pull.go `defaultScheme`) speaks plain HTTP
# to a registry on localhost/127.0.0.1/::1 at any port, which is all the tests use (the
# distribution registry that tests/tests/kube_registry.rs runs on 127.0.0.1:PORT); a
# hosts dir would switch the CRI to hosts.toml resolution for every registry.
cat > "$STATE/config/containerd.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$STATE/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  netns_mounts_under_state_dir = true
  # Pods of Guaranteed QoS or critical priority get a negative oom_score_adj,
  # which needs CAP_SYS_RESOURCE; sandboxes (CI VMs, containers) may not have
  # it. Clamp to containerd's own score instead of failing the pod.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$STATE/run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
cat > "$STATE/cni/net.d/10-devenv.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "devenv",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$STATE/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
start containerd containerd --config "$STATE/config/containerd.toml" --log-level warn
CTR=(ctr --address "$CONTAINERD_SOCK" --namespace k8s.io)
wait_component containerd 60 "${CTR[@]}" version

for image in pause busybox coredns redis; do
  "${CTR[@]}" images import --snapshotter overlayfs "$IMAGES/$image.tar" > /dev/null
done
imported="$("${CTR[@]}" images ls -q)"
for image in "$PAUSE_IMAGE" "$BUSYBOX_IMAGE" "$COREDNS_IMAGE" "$REDIS_IMAGE"; do
  grep -qxF "$image" <<<"$imported" || die "image $image missing after import"
done
log "imported images: $(grep -v "^sha256:" <<<"$imported" | tr "\n" " ")"

# --- kubelet ---------------------------------------------------------------------------
cat > "$STATE/config/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
clusterDNS: [$DNS_SVC_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: /etc/resolv.conf
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
failSwapOn: false
rotateCertificates: false
serverTLSBootstrap: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"}
maxPods: 110
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusReportFrequency: 10s
shutdownGracePeriod: 0s
EOF
start kubelet "$BIN/kubelet" --config "$STATE/config/kubelet.yaml" --kubeconfig "$KC/kubelet.conf" \
  --root-dir "$STATE/kubelet" --cert-dir "$STATE/kubelet/pki" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1

# --- kube-proxy ------------------------------------------------------------------------------
cat > "$STATE/config/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KC/kube-proxy.conf}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
nodePortAddresses: ["$NODE_IP/32"]
EOF
start kube-proxy "$BIN/kube-proxy" --config "$STATE/config/kube-proxy.yaml" --v=1

# --- local-path-provisioner ------------------------------------------------------------------
# rancher's dynamic provisioner, out of cluster with the admin kubeconfig; the
# objects its in-cluster deployment would have (namespace, helper pods'
# service account, its ConfigMap), and the default StorageClass. Each volume is
# a directory $LOCAL_PATH_DIR/pvc-<uid>_<namespace>_<claim>, made and removed
# by a busybox helper pod on the node; the PV is a hostPath volume pinned to
# the node. WaitForFirstConsumer: a claim binds when a pod using it is
# scheduled.
mkdir -p "$LOCAL_PATH_DIR"
cat > "$STATE/config/local-path-storage.yaml" <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $PROVISIONER_NAMESPACE}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-provisioner-service-account, namespace: $PROVISIONER_NAMESPACE}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: $PROVISIONER_NAMESPACE}
data:
  config.json: |-
    {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["$LOCAL_PATH_DIR"]}]}
  setup: |-
    set -eu
    mkdir -m 0777 -p "\$VOL_DIR"
  teardown: |-
    set -eu
    rm -rf "\$VOL_DIR"
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata:
      name: helper-pod
    spec:
      priorityClassName: system-node-critical
      tolerations:
      - {key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}
      containers:
      - name: helper-pod
        image: $BUSYBOX_IMAGE
        imagePullPolicy: Never
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $STORAGE_CLASS
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: $PROVISIONER_NAME
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
EOF
kubectl_admin apply -f "$STATE/config/local-path-storage.yaml" > /dev/null
start local-path-provisioner "$PROVISIONER_BIN" --debug start \
  --kubeconfig "$KC/admin.conf" --namespace "$PROVISIONER_NAMESPACE" \
  --configmap-name local-path-config --service-account-name local-path-provisioner-service-account \
  --provisioner-name "$PROVISIONER_NAME" --helper-image "$BUSYBOX_IMAGE"
provisioner_started() { grep -q "Started provisioner controller" "$STATE/logs/local-path-provisioner.log"; }
wait_component local-path-provisioner 60 provisioner_started

node_ready() {
  [[ "$(kubectl_admin get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
all_running() { local c; for c in "${COMPONENTS[@]}"; do running "$c" || return 1; done; }
deadline=$((SECONDS + 120))
until node_ready; do
  all_running || exit 1
  (( SECONDS < deadline )) || die "node $NODE_NAME did not become Ready within 120s"
  sleep 0.5
done
log "node $NODE_NAME is Ready"

# --- CoreDNS --------------------------------------------------------------------------------
cat > "$STATE/config/coredns.yaml" <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health {
            lameduck 2s
        }
        ready
        kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        forward . /etc/resolv.conf
        cache 30
        loop
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {memory: 170Mi}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 1
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 10
          periodSeconds: 10
      volumes:
      - name: config
        configMap: {name: coredns, items: [{key: Corefile, path: Corefile}]}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_SVC_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
EOF
kubectl_admin apply -f "$STATE/config/coredns.yaml" > /dev/null
coredns_available() {
  [[ "$(kubectl_admin -n kube-system get deployment coredns -o 'jsonpath={.status.availableReplicas}' 2>/dev/null)" == 1 ]]
}
deadline=$((SECONDS + 120))
until coredns_available; do
  all_running || exit 1
  (( SECONDS < deadline )) || { kubectl_admin -n kube-system describe pods -l k8s-app=kube-dns >&2 || true; die "CoreDNS did not become available within 120s"; }
  sleep 0.5
done

# Final check of what runs outside the pods: every component, and the
# provisioner behind the default StorageClass.
all_running || exit 1
provisioner_started || die "local-path-provisioner is running but its controller did not start"
[[ "$(kubectl_admin get storageclass "$STORAGE_CLASS" \
      -o 'jsonpath={.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}' 2>/dev/null)" == true ]] \
  || die "StorageClass $STORAGE_CLASS is missing or not the default"

trap - EXIT
log "cluster is up in $((SECONDS - START))s: $("$BIN/kubectl" version --client -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1), node $NODE_NAME Ready, CoreDNS available, default StorageClass $STORAGE_CLASS"
log "kubectl: $STATE/bin/kubectl (or any kubectl) with the KUBECONFIG below; stop with tests/cluster/down.sh"
print_export
