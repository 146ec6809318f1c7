#!/usr/bin/env bash
# Checks the running test cluster's extras end to end, in a namespace of its
# own that it deletes again:
#   - the redis image: a Deployment of devenv.test/redis:7 becomes Ready,
#     `redis-cli ping` answers PONG, and another pod reaches it by Service name
#   - dynamic volumes: a claim on the default StorageClass binds when a pod
#     uses it, the pod writes a file, and deleting the claim removes the PV
#     and its directory
#   - helm (if ~/.cache/devenv-tools/bin/helm or one on PATH exists):
#     upgrade --install of a one-ConfigMap chart, an upgrade, uninstall
# Does not start the cluster (run up.sh first) and takes no lock.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

export KUBECONFIG="${KUBECONFIG_OVERRIDE:-$STATE/kubeconfig/admin.conf}"
[[ -r "$KUBECONFIG" ]] || die "no cluster: $KUBECONFIG is missing (run tests/cluster/up.sh)"
K=("$STATE/bin/kubectl" --request-timeout=20s)
NS="devenv-verify"
work="$(mktemp -d)"
cleanup() {
  "${K[@]}" delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
ok() { printf '[verify] ok: %s\n' "$*" >&2; }

"${K[@]}" delete namespace "$NS" --ignore-not-found --wait=true --timeout=60s >/dev/null
"${K[@]}" create namespace "$NS" >/dev/null

# --- redis ----------------------------------------------------------------------
cat > "$work/redis.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis, namespace: $NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      containers:
      - name: redis
        image: $REDIS_IMAGE
        ports: [{containerPort: 6379}]
        readinessProbe:
          exec: {command: [redis-cli, ping]}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: redis, namespace: $NS}
spec:
  selector: {app: redis}
  ports: [{port: 6379}]
EOF
"${K[@]}" apply -f "$work/redis.yaml" >/dev/null
"${K[@]}" -n "$NS" rollout status deployment/redis --timeout=90s >/dev/null
pong="$("${K[@]}" -n "$NS" exec deployment/redis -- redis-cli ping)"
[[ "$pong" == PONG ]] || die "redis-cli ping answered '$pong'"
ok "$REDIS_IMAGE Deployment Ready; redis-cli ping: $pong"
"${K[@]}" -n "$NS" exec deployment/redis -- redis-cli set devenv-verify 42 >/dev/null
"${K[@]}" -n "$NS" run redis-client --image="$REDIS_IMAGE" --restart=Never --command -- \
  redis-cli -h "redis.$NS.svc.$CLUSTER_DOMAIN" get devenv-verify >/dev/null
"${K[@]}" -n "$NS" wait pod/redis-client --for=jsonpath='{.status.phase}'=Succeeded --timeout=60s >/dev/null
got="$("${K[@]}" -n "$NS" logs redis-client)"
[[ "$got" == 42 ]] || die "redis through its Service answered '$got'"
ok "another pod reads redis through the Service redis.$NS.svc.$CLUSTER_DOMAIN"

# --- dynamic PersistentVolume --------------------------------------------------------
cat > "$work/pvc.yaml" <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: $NS}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer, namespace: $NS}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: writer
    image: $BUSYBOX_IMAGE
    command: [sh, -c, 'echo devenv-verify > /data/file && exec sleep 3600']
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
EOF
"${K[@]}" apply -f "$work/pvc.yaml" >/dev/null
"${K[@]}" -n "$NS" wait pod/writer --for=condition=Ready --timeout=120s >/dev/null
pv="$("${K[@]}" -n "$NS" get pvc data -o jsonpath='{.spec.volumeName}')"
phase="$("${K[@]}" -n "$NS" get pvc data -o jsonpath='{.status.phase}')"
class="$("${K[@]}" -n "$NS" get pvc data -o jsonpath='{.spec.storageClassName}')"
[[ "$phase" == Bound && -n "$pv" ]] || die "claim is $phase"
[[ "$class" == "$STORAGE_CLASS" ]] || die "claim got StorageClass '$class', not the default $STORAGE_CLASS"
dir="$("${K[@]}" get pv "$pv" -o jsonpath='{.spec.hostPath.path}')"
[[ "$(cat "$dir/file")" == devenv-verify ]] || die "the pod's file is not in $dir"
ok "claim Bound to $pv ($class); the pod's file is in $dir"
"${K[@]}" -n "$NS" delete pod writer --wait=true --timeout=60s >/dev/null
"${K[@]}" -n "$NS" delete pvc data --wait=true --timeout=60s >/dev/null
wait_for "PV $pv deleted" 60 bash -c '! "$@" get pv "'"$pv"'"' _ "${K[@]}" \
  || die "PV $pv still exists 60s after its claim was deleted"
wait_for "$dir removed" 30 test ! -e "$dir" || die "$dir still exists"
ok "claim deleted: PV $pv and its directory are gone"

# --- helm ------------------------------------------------------------------------------
helm="${HELM:-$HOME/.cache/devenv-tools/bin/helm}"
[[ -x "$helm" ]] || helm="$(command -v helm || true)"
if [[ -z "$helm" ]]; then
  log "helm not found (scripts/install-test-tools.sh builds it): skipping the helm check"
else
  mkdir -p "$work/chart/templates"
  printf 'apiVersion: v2\nname: devenv-verify\nversion: 0.1.0\n' > "$work/chart/Chart.yaml"
  printf 'greeting: hello\n' > "$work/chart/values.yaml"
  cat > "$work/chart/templates/configmap.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: {{ .Release.Name }}-greeting}
data: {greeting: {{ .Values.greeting | quote }}}
EOF
  "$helm" upgrade --install verify "$work/chart" -n "$NS" --wait >/dev/null
  "$helm" upgrade --install verify "$work/chart" -n "$NS" --set greeting=again --wait >/dev/null
  got="$("${K[@]}" -n "$NS" get configmap verify-greeting -o jsonpath='{.data.greeting}')"
  [[ "$got" == again ]] || die "helm upgrade: ConfigMap says '$got'"
  "$helm" uninstall verify -n "$NS" --wait >/dev/null
  ! "${K[@]}" -n "$NS" get configmap verify-greeting >/dev/null 2>&1 || die "helm uninstall left the ConfigMap"
  ok "$("$helm" version --short): upgrade --install, upgrade, uninstall"
fi

"${K[@]}" delete namespace "$NS" --wait=true --timeout=60s >/dev/null
ok "all checks passed"
