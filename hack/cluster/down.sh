#!/usr/bin/env bash
# Stops the local cluster that hack/cluster/up.sh started and leaves the host as it was: it
# stops exactly the processes it recorded (and the container shims of its own containerd),
# removes its containers, mounts, cgroups and any iptables chains the kubelet made, and deletes
# the state folder unless KEEP_STATE=1.
set -uo pipefail
source "$(dirname "$0")/common.sh"

[ "$(id -u)" = 0 ] || die "must run as root (it stops containerd and the kubelet)"
[ -d "$P" ] || { log "nothing to stop ($P does not exist)"; exit 0; }

stop() {
  local name=$1
  if pid_alive "$name"; then
    local pid
    pid=$(cat "$P/pids/$name.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$P/pids/$name.pid"
}

# Let the kubelet stop the pods cleanly while everything still runs.
if pid_alive apiserver && pid_alive kubelet; then
  kubectl_admin delete pods --all --all-namespaces --grace-period=0 --force --wait=false >/dev/null 2>&1
  for _ in $(seq 60); do
    [ -z "$(kubectl_admin get pods -A -o name 2>/dev/null)" ] && break
    sleep 0.5
  done
fi

for c in kubelet controller-manager scheduler apiserver etcd; do stop "$c"; done

# Containers the kubelet left behind, inside the node's mount namespace.
if pid_alive ns && pid_alive containerd; then
  ctr_node() { in_node ctr --address "$CTR_SOCK" -n k8s.io "$@"; }
  for t in $(ctr_node tasks ls -q 2>/dev/null); do ctr_node tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  for _ in $(seq 20); do [ -z "$(ctr_node tasks ls -q 2>/dev/null)" ] && break; sleep 0.25; done
  for t in $(ctr_node tasks ls -q 2>/dev/null); do ctr_node tasks rm -f "$t" >/dev/null 2>&1; done
  for c in $(ctr_node containers ls -q 2>/dev/null); do ctr_node containers rm "$c" >/dev/null 2>&1; done
fi
stop containerd
# Shims of our containerd only: their command line names our socket.
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTR_SOCK" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
# Unmount what containerd mounted inside the node namespace (overlay rootfs, shm) while it lives.
if pid_alive ns; then
  in_node sh -c "grep -o ' $P/[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l" 2>/dev/null
fi
stop ns

# Empty pod cgroups the kubelet made (cgroup v1: one tree per controller; v2: one tree).
for root in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [ -d "$root/kubepods" ] && find "$root/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
  [ -d "$root/kubepods.slice" ] && find "$root/kubepods.slice" -depth -type d -exec rmdir {} \; 2>/dev/null
done
left=$(ls -d /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods 2>/dev/null)
[ -n "$left" ] && log "warning: cgroups left behind: $left"

# iptables chains a kubelet makes when makeIPTablesUtilChains is on (it is off; this is a guard).
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY; do
    for t in filter mangle nat; do
      if "$ipt" -t "$t" -S "$chain" >/dev/null 2>&1; then
        "$ipt" -t "$t" -D INPUT -j "$chain" 2>/dev/null
        "$ipt" -t "$t" -D OUTPUT -j "$chain" 2>/dev/null
        "$ipt" -t "$t" -F "$chain" 2>/dev/null
        "$ipt" -t "$t" -X "$chain" 2>/dev/null
      fi
    done
  done
done

# The empty mount points up.sh made on the host, if nothing else uses them.
for d in /var/lib/kubelet /var/log/containers /run/containerd /var/lib/cni; do
  rmdir "$d" 2>/dev/null
done
rm -f /run/netns/cni-* 2>/dev/null
rmdir /run/netns 2>/dev/null

if [ "${KEEP_STATE:-0}" != 1 ]; then
  # Overlay snapshots may hold read-only files; umount leftovers first.
  grep -o " $P/[^ ]*" /proc/self/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$P"
fi
log "stopped"
exit 0
