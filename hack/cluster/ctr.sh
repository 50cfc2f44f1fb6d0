#!/usr/bin/env bash
# Runs ctr against the local cluster's containerd, in the node's mount namespace and the
# kubelet's k8s.io namespace: what images the node has and where they came from.
#
#   hack/cluster/ctr.sh images ls
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ "$(id -u)" = 0 ] || die "must run as root (it enters the node's mount namespace)"
pid_alive ns && pid_alive containerd || die "the local cluster is not running: hack/cluster/up.sh starts it"
in_node ctr --address "$CTR_SOCK" -n k8s.io "$@"
