# Shared settings of hack/cluster/up.sh and down.sh. Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
K8S_BIN=${K8S_BIN:-$ROOT/bin/k8s/$KUBE_VERSION}
IMAGES_DIR=${IMAGES_DIR:-$ROOT/bin/images}
# State of the cluster: certificates, data, logs, PIDs. Kept short: unix socket paths below it
# must stay under 108 bytes.
P=${SDFLEET_CLUSTER_DIR:-/tmp/sdfleet-cluster}
NODE=localhost # the node's name is also its Hostname address, which the API server dials
API_PORT=${API_PORT:-16443}
ETCD_PORT=${ETCD_PORT:-23790}
KUBECONFIG_ADMIN=$P/kubeconfig/admin.kubeconfig
CTR_SOCK=$P/containerd/containerd.sock
PAUSE_IMAGE=docker.io/library/pause:sdfleet

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# pid_alive NAME: the process recorded in $P/pids/NAME.pid runs.
pid_alive() { [ -f "$P/pids/$1.pid" ] && kill -0 "$(cat "$P/pids/$1.pid")" 2>/dev/null; }

# in_node CMD...: runs CMD in the node's private mount namespace, where /var/lib/kubelet and
# the other node paths are bind mounts into $P.
in_node() { nsenter -t "$(cat "$P/pids/ns.pid")" -m -- "$@"; }

kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# start_kubelet starts the kubelet in the node's mount namespace, appending to its log.
start_kubelet() {
  setsid nsenter -t "$(cat "$P/pids/ns.pid")" -m -- "$K8S_BIN/kubelet" --config="$P/kubelet-config.yaml" \
    --kubeconfig="$P/kubeconfig/kubelet.kubeconfig" --hostname-override="$NODE" --v=2 \
    >> "$P/logs/kubelet.log" 2>&1 < /dev/null &
  echo $! > "$P/pids/kubelet.pid"
}
