#!/usr/bin/env bash
# Restarts the local cluster's kubelet, as a node upgrade or crash would: running pods survive,
# the kubelet re-creates its registration socket and device plugins must register again.
set -euo pipefail
source "$(dirname "$0")/common.sh"

pid_alive kubelet || die "the kubelet is not running (start the cluster with hack/cluster/up.sh)"
pid=$(cat "$P/pids/kubelet.pid")
kill "$pid"
for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
start_kubelet
log "kubelet restarted (pid $(cat "$P/pids/kubelet.pid"))"
