#!/usr/bin/env bash
# Shows whether the devenv test cluster is up, each component's PID and RSS,
# and the total RSS of the cluster (components, containerd shims, and the
# processes in the pods' cgroups).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# PSS: shared pages (the multi-call binary's text, mapped by five processes)
# counted once in total instead of once per process.
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

if [[ ! -d "$STATE/pids" ]]; then
  echo "devenv test cluster: down (no state in $STATE)"
  exit 1
fi
total=0; ptotal=0
up=1
printf '%-26s %8s %10s %10s\n' COMPONENT PID RSS_MiB PSS_MiB
for c in "${COMPONENTS[@]}"; do
  pid="$(pid_of "$c" || true)"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kb="$(rss_kb "$pid")"; total=$((total + kb))
    pkb="$(pss_kb "$pid")"; ptotal=$((ptotal + pkb))
    printf '%-26s %8s %10s %10s\n' "$c" "$pid" "$(mib "$kb")" "$(mib "$pkb")"
  else
    printf '%-26s %8s %10s\n' "$c" "-" "DOWN"; up=0
  fi
done
shims=0; shim_kb=0; shim_pkb=0
for p in /proc/[0-9]*; do
  if tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "-address $CONTAINERD_SOCK "; then
    shims=$((shims + 1)); shim_kb=$((shim_kb + $(rss_kb "${p#/proc/}"))); shim_pkb=$((shim_pkb + $(pss_kb "${p#/proc/}")))
  fi
done
total=$((total + shim_kb)); ptotal=$((ptotal + shim_pkb))
printf '%-26s %8s %10s %10s\n' "containerd shims ($shims)" "" "$(mib "$shim_kb")" "$(mib "$shim_pkb")"
pod_kb=0; pod_pkb=0; pod_n=0
for pid in $(find /sys/fs/cgroup/memory/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
  pod_n=$((pod_n + 1)); pod_kb=$((pod_kb + $(rss_kb "$pid"))); pod_pkb=$((pod_pkb + $(pss_kb "$pid")))
done
total=$((total + pod_kb)); ptotal=$((ptotal + pod_pkb))
printf '%-26s %8s %10s %10s\n' "pod processes ($pod_n)" "" "$(mib "$pod_kb")" "$(mib "$pod_pkb")"
printf '%-26s %8s %10s %10s\n' "TOTAL" "" "$(mib "$total")" "$(mib "$ptotal")"
if (( up )); then
  echo "devenv test cluster: up; export KUBECONFIG=$STATE/kubeconfig/admin.conf"
else
  echo "devenv test cluster: partly down; run tests/cluster/down.sh"
  exit 1
fi
