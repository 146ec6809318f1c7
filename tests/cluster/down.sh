#!/usr/bin/env bash
# Stops the devenv test cluster started by up.sh and removes everything it
# left on the host: pods and their containers, mounts, the cni0 and devenv0
# links, the cluster's iptables chains and rules, cgroups, sysctls, and the
# state directory (certs, etcd data, logs, pids, kubeconfig, the
# local-path volumes). The build cache
# stays. Idempotent: safe to run when the cluster is down or half-started.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null || die "must run as root"
  exec sudo --preserve-env=DEVENV_CLUSTER_CACHE,DEVENV_CLUSTER_STATE,HOME "$0" "$@"
fi

cluster_lock
START=$SECONDS
KB="$STATE/bin"
CTR=(ctr --address "$CONTAINERD_SOCK" --namespace k8s.io)

if [[ ! -e "$STATE" ]] && ! ip link show "$NODE_LINK" >/dev/null 2>&1; then
  log "no cluster state in $STATE and no $NODE_LINK link: nothing to stop"
  exit 0
fi

# stop [-t TIMEOUT] NAME...: SIGTERM by pid to all of them at once, SIGKILL
# to those still alive after the timeout (default 10s).
stop() {
  local timeout=10
  if [[ "$1" == -t ]]; then timeout="$2"; shift 2; fi
  local name pid names=() pids=()
  for name in "$@"; do
    pid="$(pid_of "$name")" || continue
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      names+=("$name"); pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + timeout)) i left
  while :; do
    left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    (( left && SECONDS < deadline )) || break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      log "${names[$i]} (pid ${pids[$i]}) did not stop in ${timeout}s: SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null
      while kill -0 "${pids[$i]}" 2>/dev/null; do sleep 0.1; done
    fi
    log "stopped ${names[$i]} (pid ${pids[$i]})"
  done
  for name in "$@"; do rm -f "$STATE/pids/$name.pid"; done
}

running_tasks() { "${CTR[@]}" tasks ls -q 2>/dev/null | grep -c . ; }

# 1. Pods: with the control plane and kubelet still up, delete every pod so
#    the kubelet stops its containers and tears down its sandboxes (CNI DEL).
if alive kube-apiserver && alive kubelet && alive containerd && [[ -x "$KB/kubectl" ]]; then
  stop local-path-provisioner kube-controller-manager kube-scheduler kube-proxy
  K=("$KB/kubectl" --kubeconfig "$STATE/kubeconfig/admin.conf" --request-timeout=10s)
  "${K[@]}" delete pods --all-namespaces --all --grace-period=0 --force --wait=false >/dev/null 2>&1
  deadline=$((SECONDS + 30))
  while (( $(running_tasks) > 0 && SECONDS < deadline )); do sleep 0.2; done
  (( $(running_tasks) > 0 )) && log "pods still running after 30s; killing them directly"
fi

# 2. Node components (and the provisioner, if step 1 did not run).
stop local-path-provisioner kube-proxy kubelet kube-controller-manager kube-scheduler

# 3. Whatever containers are left: kill and delete them through containerd,
#    then any process still in the pods' cgroups.
if alive containerd; then
  for id in $("${CTR[@]}" tasks ls -q 2>/dev/null); do
    "${CTR[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1
  done
  deadline=$((SECONDS + 10))
  while (( $(running_tasks) > 0 && SECONDS < deadline )); do sleep 0.2; done
  for id in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks delete -f "$id" >/dev/null 2>&1; done
  for id in $("${CTR[@]}" containers ls -q 2>/dev/null); do "${CTR[@]}" containers delete "$id" >/dev/null 2>&1; done
fi
kill_cgroup_procs() {
  local pids
  pids="$(find /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
  [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null
  return 0
}
kill_cgroup_procs
stop -t 20 containerd
# containerd's shims outlive it: end the ones serving this cluster's containerd.
for p in /proc/[0-9]*; do
  if tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "-address $CONTAINERD_SOCK "; then
    kill -KILL "${p#/proc/}" 2>/dev/null && log "killed leftover shim ${p#/proc/}"
  fi
done
# Shim socket dir of containerd 1.6 (fixed path); removed only if empty.
rmdir /run/containerd/s 2>/dev/null && rmdir /run/containerd 2>/dev/null
stop -t 20 kube-apiserver
stop -t 20 etcd

# 4. Mounts under the state dir (overlay rootfs, netns, secret tmpfs), deepest first.
unmount_state() {
  local m
  awk '{print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' \
    | awk -v s="$STATE" 'index($0, s "/") == 1' | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
    done
}
unmount_state
unmount_state  # mounts revealed by the first pass (stacked mounts)

# 5. Cgroups the kubelet and containerd created (now empty).
for ctrl in /sys/fs/cgroup/*/; do
  [[ -d "$ctrl/kubepods" ]] && find "$ctrl/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
  [[ -d "$ctrl/kubepods" ]] && log "could not remove cgroup $ctrl/kubepods"
done

# 6. Network: links, routes, iptables chains and rules of the cluster.
ip link del cni0 2>/dev/null
ip link del "$NODE_LINK" 2>/dev/null   # also removes the routes through it
if [[ -x "$KB/kube-proxy" ]]; then
  "$KB/kube-proxy" --cleanup --v=0 >/dev/null 2>&1 || true
fi
# Remove every KUBE-* and CNI-* chain and every rule that jumps to one; the
# rest of the host's rules are restored untouched.
clean_iptables() {
  local save="$1" restore="$2"
  command -v "$save" >/dev/null || return 0
  local before after
  before="$("$save" 2>/dev/null)" || return 0
  grep -qE 'KUBE-|CNI-' <<<"$before" || return 0
  after="$(grep -vE '^:(KUBE-|CNI-)|^-A (KUBE-|CNI-)|-j (KUBE-|CNI-)|-g (KUBE-|CNI-)' <<<"$before")"
  "$restore" <<<"$after" || log "$restore failed; leftover rules: $("$save" | grep -cE 'KUBE-|CNI-')"
}
clean_iptables iptables-save iptables-restore
clean_iptables ip6tables-save ip6tables-restore
# The ipsets of the NetworkPolicy test's enforcer (kube-router), should a killed test
# run have left them (its chains went with the KUBE-* ones above).
bash "$(dirname "$0")/netpol-clean.sh" || log "kube-router's ipsets are left (see above)"
command -v conntrack >/dev/null && conntrack -D -s "$POD_CIDR" >/dev/null 2>&1

# 7. Sysctls back to what they were before up.sh.
for f in "$STATE"/saved/net.*; do
  [[ -f "$f" ]] && sysctl -qw "$(basename "$f")=$(cat "$f")" 2>/dev/null
done

# 8. State.
if awk '{print $5}' /proc/self/mountinfo | grep -q "^$STATE/"; then
  log "mounts remain under $STATE; not deleting it"
  exit 1
fi
rm -rf "$STATE"
log "cluster is down ($((SECONDS - START))s)"
