#!/usr/bin/env bash
# Starts a real single-node Kubernetes cluster on loopback: etcd, kube-apiserver,
# kube-scheduler, kube-controller-manager and a kubelet with containerd and runc, all on this
# machine, without a registry, Docker, or changes to the host's network, sysctls or iptables.
#
#   hack/cluster/up.sh            # prints the KUBECONFIG path on stdout
#
# Idempotent: when the cluster already runs it only prints the path. OCI archives in bin/images
# are imported into the node's containerd on every run. hack/cluster/down.sh stops it.
#
#   LOCAL_REGISTRY=127.0.0.1:5000 hack/cluster/up.sh
#
# With LOCAL_REGISTRY (a plain-HTTP registry on loopback, e.g. bin/registry) containerd pulls
# from that registry (config_path and a hosts.toml for it) and only the sandbox image is
# imported: sdfleet's images come from the registry, as on a real cluster (`make push`).
#
# How it stays off the host: containerd and the kubelet run in a private mount namespace in
# which the node paths (/var/lib/kubelet, /run/containerd, ...) are bind mounts into the state
# folder and the three sysctls the kubelet insists on (vm.overcommit_memory, kernel.panic,
# kernel.panic_on_oops) are files holding the values it wants; pods get a CNI plugin that
# creates nothing (their network namespace has only lo; use hostNetwork for networking); the
# kubelet makes no iptables chains.
set -euo pipefail
source "$(dirname "$0")/common.sh"
LOCAL_REGISTRY=${LOCAL_REGISTRY:-}
case "$LOCAL_REGISTRY" in
  "" | 127.0.0.1:[0-9]* | localhost:[0-9]*) ;;
  *) echo "[cluster] error: LOCAL_REGISTRY=$LOCAL_REGISTRY: expected 127.0.0.1:PORT or localhost:PORT, a plain-HTTP registry on loopback" >&2; exit 1 ;;
esac

[ "$(id -u)" = 0 ] || die "must run as root (it starts containerd and a kubelet)"
missing=()
for c in containerd containerd-shim-runc-v2 runc ctr unshare nsenter openssl setsid mount; do
  command -v "$c" >/dev/null || missing+=("$c")
done
[ -x /usr/lib/cni/loopback ] || missing+=("/usr/lib/cni/loopback")
[ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: run hack/install-prerequisites.sh --cluster (containerd, runc, containernetworking-plugins)"

# registry_hosts writes containerd's hosts.toml for LOCAL_REGISTRY: plain HTTP, pull and resolve.
# containerd reads config_path's folder at every pull, so it needs no restart.
registry_hosts() {
  [ -n "$LOCAL_REGISTRY" ] || return 0
  mkdir -p "$P/containerd/certs.d/$LOCAL_REGISTRY"
  cat > "$P/containerd/certs.d/$LOCAL_REGISTRY/hosts.toml" <<HOSTS
server = "http://$LOCAL_REGISTRY"
[host."http://$LOCAL_REGISTRY"]
  capabilities = ["pull", "resolve"]
HOSTS
}

# import_images imports the image archives of bin/images; with LOCAL_REGISTRY only the sandbox
# image, since the rest comes from the registry.
import_images() {
  local img
  for img in "$IMAGES_DIR"/*.tar; do
    [ -f "$img" ] || continue
    [ -n "$LOCAL_REGISTRY" ] && [ "$img" != "$IMAGES_DIR/pause.tar" ] && continue
    in_node ctr --address "$CTR_SOCK" -n k8s.io images import "$img" >/dev/null || die "importing $img failed"
  done
}

if pid_alive kubelet && pid_alive apiserver && kubectl_admin get --raw /readyz >/dev/null 2>&1; then
  log "already running"
  mkdir -p "$P/containerd/certs.d"
  registry_hosts
  import_images
  echo "$KUBECONFIG_ADMIN"
  exit 0
fi
if [ -d "$P/pids" ] && ls "$P"/pids/*.pid >/dev/null 2>&1; then
  log "a previous cluster is partly running: stopping it first"
  "$(dirname "$0")/down.sh"
fi

T0=$(date +%s)
step() { log "[$(($(date +%s) - T0))s] $*"; }

# --- binaries and the sandbox image ----------------------------------------------------------
need=()
for b in kube-apiserver etcd kubectl kubelet kube-scheduler kube-controller-manager; do
  [ -x "$K8S_BIN/$b" ] || need+=("$b")
done
if [ ${#need[@]} -gt 0 ]; then
  step "building ${need[*]} from source (one time, several minutes)"
  KUBE_VERSION=$KUBE_VERSION ASSETS_DIR=$K8S_BIN "$ROOT/hack/build-control-plane.sh" "${need[@]}"
fi
mkdir -p "$IMAGES_DIR"
if [ ! -f "$IMAGES_DIR/pause.tar" ]; then
  step "building the pause image"
  (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ROOT/bin/pause" ./hack/cluster/pause &&
    go run ./hack/mkimage -name "$PAUSE_IMAGE" -o "$IMAGES_DIR/pause.tar" "$ROOT/bin/pause=/pause")
fi

mkdir -p "$P"/{pids,logs,pki,kubeconfig,etcd,containerd,cni/bin,cni/net.d,sysctl,node/kubelet,node/containers,node/run-containerd,node/cni,pod-logs}
mkdir -p /var/lib/kubelet /var/log/containers /run/containerd /var/lib/cni # empty mount points

# --- certificates and tokens -----------------------------------------------------------------
if [ ! -f "$P/pki/apiserver.crt" ]; then
  step "making certificates"
  (
    cd "$P/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=sdfleet-local-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' > ext.cnf
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 30 -extfile ext.cnf 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    admin=$(openssl rand -hex 16) node=$(openssl rand -hex 16)
    printf '%s,admin,admin-uid,system:masters\n%s,system:node:%s,node-uid,system:nodes\n' "$admin" "$node" "$NODE" > tokens.csv
    chmod 600 tokens.csv ./*.key
  )
fi
token() { awk -F, -v u="$1" '$2 == u {print $1}' "$P/pki/tokens.csv"; }
kubeconfig() {
  cat > "$P/kubeconfig/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: sdfleet-local, cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$P/pki/ca.crt"}}]
users: [{name: $1, user: {token: "$2"}}]
contexts: [{name: sdfleet-local, context: {cluster: sdfleet-local, user: $1}}]
current-context: sdfleet-local
KC
  chmod 600 "$P/kubeconfig/$1.kubeconfig"
}
kubeconfig admin "$(token admin)"
kubeconfig kubelet "$(token "system:node:$NODE")"

# --- the node's mount namespace --------------------------------------------------------------
echo 1 > "$P/sysctl/vm.overcommit_memory"
echo 10 > "$P/sysctl/kernel.panic"
echo 1 > "$P/sysctl/kernel.panic_on_oops"
cat > "$P/node-namespace.sh" <<NS
#!/bin/sh
set -e
mount --bind $P/sysctl/vm.overcommit_memory /proc/sys/vm/overcommit_memory
mount --bind $P/sysctl/kernel.panic /proc/sys/kernel/panic
mount --bind $P/sysctl/kernel.panic_on_oops /proc/sys/kernel/panic_on_oops
mount --bind $P/node/kubelet /var/lib/kubelet
mount --bind $P/node/containers /var/log/containers
mount --bind $P/node/run-containerd /run/containerd
mount --bind $P/node/cni /var/lib/cni
echo \$\$ > $P/pids/ns.pid
exec sleep infinity
NS
chmod +x "$P/node-namespace.sh"
rm -f "$P/pids/ns.pid"
setsid unshare -m --propagation private "$P/node-namespace.sh" > "$P/logs/ns.log" 2>&1 < /dev/null &
for _ in $(seq 100); do [ -s "$P/pids/ns.pid" ] && break; sleep 0.1; done
[ -s "$P/pids/ns.pid" ] || die "the node mount namespace did not start: $(cat "$P/logs/ns.log")"

# --- containerd with a CNI plugin that changes nothing on the host ---------------------------
cp /usr/lib/cni/loopback "$P/cni/bin/"
cat > "$P/cni/bin/noop" <<'CNI'
#!/bin/sh
# A CNI plugin that creates nothing: the pod keeps only lo, and a made-up address is reported.
case "$CNI_COMMAND" in
ADD) cat >/dev/null; n=$(printf '%s' "$CNI_CONTAINERID" | cksum | cut -d' ' -f1)
  printf '{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"%s"}],"ips":[{"version":"4","address":"10.244.%d.%d/16","interface":0}]}\n' "$CNI_NETNS" $(( (n/250)%250+1 )) $(( n%250+2 )) ;;
DEL|CHECK) cat >/dev/null ;;
VERSION) echo '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}' ;;
*) exit 1 ;;
esac
CNI
chmod +x "$P/cni/bin/noop"
echo '{"cniVersion":"0.4.0","name":"noop","plugins":[{"type":"noop"}]}' > "$P/cni/net.d/10-noop.conflist"
cat > "$P/containerd/config.toml" <<TOML
version = 2
root = "$P/containerd/root"
state = "$P/containerd/state"
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = "$CTR_SOCK.ttrpc"
[debug]
  address = "$P/containerd/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Without CAP_SYS_RESOURCE a negative oom_score_adj (the sandbox asks for -998) is refused.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$P/cni/bin"
    conf_dir = "$P/cni/net.d"
  # One folder per registry host with its hosts.toml (LOCAL_REGISTRY's is written below).
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$P/containerd/certs.d"
TOML
mkdir -p "$P/containerd/certs.d"
registry_hosts
step "starting containerd"
setsid nsenter -t "$(cat "$P/pids/ns.pid")" -m -- containerd --config "$P/containerd/config.toml" > "$P/logs/containerd.log" 2>&1 < /dev/null &
echo $! > "$P/pids/containerd.pid"
for _ in $(seq 100); do in_node ctr --address "$CTR_SOCK" version >/dev/null 2>&1 && break; sleep 0.2; done
in_node ctr --address "$CTR_SOCK" version >/dev/null 2>&1 || die "containerd did not start: see $P/logs/containerd.log"
import_images

# --- etcd and the API server -----------------------------------------------------------------
step "starting etcd and kube-apiserver"
setsid "$K8S_BIN/etcd" --name sdfleet --data-dir "$P/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
  --initial-cluster "sdfleet=http://127.0.0.1:$((ETCD_PORT + 10))" --listen-metrics-urls "http://127.0.0.1:$((ETCD_PORT + 20))" \
  > "$P/logs/etcd.log" 2>&1 < /dev/null &
echo $! > "$P/pids/etcd.pid"
setsid "$K8S_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --tls-cert-file="$P/pki/apiserver.crt" --tls-private-key-file="$P/pki/apiserver.key" --client-ca-file="$P/pki/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/pki/sa.pub" --service-account-signing-key-file="$P/pki/sa.key" \
  --service-cluster-ip-range=10.96.0.0/24 --token-auth-file="$P/pki/tokens.csv" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --endpoint-reconciler-type=none --cert-dir="$P/pki/apiserver-generated" \
  --kubelet-preferred-address-types=Hostname,InternalIP --v=1 \
  > "$P/logs/apiserver.log" 2>&1 < /dev/null &
echo $! > "$P/pids/apiserver.pid"
for _ in $(seq 240); do kubectl_admin get --raw /readyz >/dev/null 2>&1 && break; sleep 0.5; done
kubectl_admin get --raw /readyz >/dev/null 2>&1 || die "kube-apiserver did not become ready: see $P/logs/apiserver.log"

# --- scheduler and controller manager --------------------------------------------------------
step "starting kube-scheduler and kube-controller-manager"
setsid "$K8S_BIN/kube-scheduler" --kubeconfig="$KUBECONFIG_ADMIN" --authentication-kubeconfig="$KUBECONFIG_ADMIN" \
  --authorization-kubeconfig="$KUBECONFIG_ADMIN" --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --v=1 \
  > "$P/logs/scheduler.log" 2>&1 < /dev/null &
echo $! > "$P/pids/scheduler.pid"
# The service account key and root CA make the default ServiceAccount and kube-root-ca.crt,
# which every pod's token volume needs.
setsid "$K8S_BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG_ADMIN" --authentication-kubeconfig="$KUBECONFIG_ADMIN" \
  --authorization-kubeconfig="$KUBECONFIG_ADMIN" --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
  --service-account-private-key-file="$P/pki/sa.key" --root-ca-file="$P/pki/ca.crt" --use-service-account-credentials=false --v=1 \
  > "$P/logs/controller-manager.log" 2>&1 < /dev/null &
echo $! > "$P/pids/controller-manager.pid"

# --- kubelet ---------------------------------------------------------------------------------
cat > "$P/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
failCgroupV1: false            # 1.37 refuses cgroup v1 hosts by default
failSwapOn: false
makeIPTablesUtilChains: false  # else the kubelet adds KUBE-* chains to the host's iptables
containerRuntimeEndpoint: unix://$CTR_SOCK
podLogsDir: $P/pod-logs
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}, x509: {clientCAFile: "$P/pki/ca.crt"}}
authorization: {mode: AlwaysAllow}   # it listens on 127.0.0.1 only
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
serializeImagePulls: false
YAML
step "starting the kubelet"
start_kubelet

ready=""
for _ in $(seq 240); do
  ready=$(kubectl_admin get node "$NODE" -o jsonpath='{range .status.conditions[?(@.type=="Ready")]}{.status}{end}/{.spec.taints}' 2>/dev/null || true)
  [ "$ready" = "True/" ] && break
  sleep 0.5
done
[ "$ready" = "True/" ] || die "node $NODE is not Ready and untainted ($ready): see $P/logs/kubelet.log"
for _ in $(seq 120); do kubectl_admin get serviceaccount default -n default >/dev/null 2>&1 && break; sleep 0.5; done
kubectl_admin get serviceaccount default -n default >/dev/null 2>&1 || die "the default ServiceAccount was not created: see $P/logs/controller-manager.log"
step "cluster ready: export KUBECONFIG=$KUBECONFIG_ADMIN"
echo "$KUBECONFIG_ADMIN"
