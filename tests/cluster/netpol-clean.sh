#!/usr/bin/env bash
# Removes what kube-router's firewall (the NetworkPolicy enforcer that
# tests/tests/network_policy.rs runs as a host process) leaves in the host's
# netfilter, and nothing else: its chains in the filter table (KUBE-ROUTER-INPUT,
# -FORWARD, -OUTPUT, KUBE-NWPLCY-*, KUBE-POD-FW-*), the rules in INPUT, FORWARD and
# OUTPUT that jump to them, and its ipsets (KUBE-SRC-*, KUBE-DST-*, TMP-*).
# kube-proxy's KUBE-* chains (KUBE-SERVICES, KUBE-FORWARD, ...) and the CNI's are
# left alone. kube-router keeps its rules when it exits (so a restart does not open
# the pods), and its own --cleanup-config does not remove the firewall's in v2.1.0.
#
# One iptables-restore --noflush per family: the deletions are one transaction that
# leaves the rest of the table (which kube-proxy rewrites concurrently) untouched.
# Exits 1, naming what is left, when anything of kube-router's remains.
set -uo pipefail

chains_re='^:(KUBE-ROUTER-(INPUT|FORWARD|OUTPUT)|KUBE-NWPLCY-[^ ]+|KUBE-POD-FW-[^ ]+) '
sets_re='^(KUBE-SRC-|KUBE-DST-|TMP-)'

clean_family() {
  local save="$1" restore="$2" rules chains
  command -v "$save" >/dev/null || return 0
  rules="$("$save" -t filter 2>/dev/null)" || return 0
  chains="$(grep -oE "$chains_re" <<<"$rules" | sed 's/^://; s/ $//')"
  [[ -n "$chains" ]] || return 0
  {
    echo '*filter'
    grep -E '^-A (INPUT|FORWARD|OUTPUT) .*-j KUBE-ROUTER-(INPUT|FORWARD|OUTPUT)' <<<"$rules" | sed 's/^-A /-D /'
    for c in $chains; do echo "-F $c"; done
    for c in $chains; do echo "-X $c"; done
    echo COMMIT
  } | "$restore" --noflush
}

clean_family iptables-save iptables-restore
clean_family ip6tables-save ip6tables-restore
if command -v ipset >/dev/null; then
  # After the rules: a set still referenced by a rule cannot be destroyed.
  for s in $(ipset list -n 2>/dev/null | grep -E "$sets_re"); do
    ipset destroy "$s" 2>/dev/null
  done
fi

left=""
for save in iptables-save ip6tables-save; do
  command -v "$save" >/dev/null || continue
  left+="$("$save" -t filter 2>/dev/null | grep -E "$chains_re|-j KUBE-ROUTER-")"
done
command -v ipset >/dev/null && left+="$(ipset list -n 2>/dev/null | grep -E "$sets_re")"
if [[ -n "$left" ]]; then
  echo "netpol-clean: kube-router's rules or sets are left:" >&2
  echo "$left" >&2
  exit 1
fi
