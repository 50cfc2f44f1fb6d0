#!/usr/bin/env bash
# `make demo`: the whole of sdfleet on this machine, with no cluster and no GPU. It builds what
# is missing, starts the local single-node cluster, installs sdfleet with four simulated GPUs
# carrying different background loads, generates a small test model, submits an 8-image
# ImageGenerationJob, shows its progress and prints where each image ran.
#
# `make demo-down` (hack/cluster/down.sh) stops it again.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source hack/cluster/common.sh

DEMO=${SDFLEET_DEMO_DIR:-/tmp/sdfleet-demo}
NS=sdfleet-demo
JOB=red-fox
say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || die "the demo starts containerd and a kubelet: run it as root"

say "Checking the packages the local cluster needs (containerd, runc, CNI plugins)"
hack/install-prerequisites.sh --cluster

say "Building sdfleet's binaries and their images (manager, deviceplugin, sdgen)"
make --no-print-directory images

say "Building helm from source (once)"
make --no-print-directory helm
HELM=$ROOT/bin/helm/v3.22.0/helm

say "Starting a real single-node Kubernetes (the first run builds its components from source)"
export KUBECONFIG
KUBECONFIG=$(hack/cluster/up.sh)
KUBECTL=$K8S_BIN/kubectl

say "Generating the tiny test model and the output folder in $DEMO"
rm -rf "$DEMO/models"
mkdir -p "$DEMO/out"
chown 65532:65532 "$DEMO/out" # image pods run as the non-root user 65532
bin/sdgen testmodel --size tiny --layout diffusers --out "$DEMO/models/tiny" >/dev/null

say "Installing sdfleet with four simulated GPUs at 45%, 10%, 70% and 25% memory load (30%, 5%, 40% and 20% busy with other work)"
cat > "$DEMO/gpus.yaml" <<'YAML'
simulate:
  scenario:
    gpus:
      - {product: NVIDIA H100 80GB HBM3, memoryMiB: 81920, memoryUsedPercent: 45, utilizationPercent: 30}
      - {product: NVIDIA H100 80GB HBM3, memoryMiB: 81920, memoryUsedPercent: 10, utilizationPercent: 5}
      - {product: NVIDIA L40S, memoryMiB: 46068, memoryUsedPercent: 70, utilizationPercent: 40}
      - {product: NVIDIA L40S, memoryMiB: 46068, memoryUsedPercent: 25, utilizationPercent: 20}
YAML
"$HELM" upgrade --install sdfleet charts/sdfleet --namespace sdfleet-system --create-namespace \
  --values hack/cluster/sdfleet-values.yaml --values "$DEMO/gpus.yaml" --wait --timeout 3m >/dev/null
# Images keep their tag across rebuilds: restart the workloads so that they run the new build.
"$KUBECTL" rollout restart -n sdfleet-system deployment/sdfleet-manager daemonset/sdfleet-deviceplugin >/dev/null
"$KUBECTL" rollout status -n sdfleet-system deployment/sdfleet-manager --timeout=3m >/dev/null
"$KUBECTL" rollout status -n sdfleet-system daemonset/sdfleet-deviceplugin --timeout=3m >/dev/null
for _ in $(seq 120); do
  [ "$("$KUBECTL" get gpunode "$NODE" -o jsonpath='{.status.gpuCount}' 2>/dev/null)" = 4 ] && break
  sleep 1
done
"$KUBECTL" get gpunodes

say "Submitting an ImageGenerationJob of 8 images"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" delete imagegenerationjob "$JOB" -n "$NS" --ignore-not-found --wait >/dev/null
cat <<YAML | tee "$DEMO/job.yaml" | "$KUBECTL" apply -f -
apiVersion: sdfleet.io/v1alpha1
kind: ImageGenerationJob
metadata:
  name: $JOB
  namespace: $NS
spec:
  prompt: "a red fox in a snowy forest, golden hour"
  images: 8
  width: 128
  height: 128
  steps: 20
  seed: 42
  model: {hostPath: {path: $DEMO/models/tiny}}
  output: {hostPath: {path: $DEMO/out}}
YAML

say "Waiting for the images (kubectl get igj -n $NS)"
start=$(date +%s)
while :; do
  line=$("$KUBECTL" get igj "$JOB" -n "$NS" -o go-template='{{or .status.phase "Pending"}} {{or .status.succeeded 0}}/{{.spec.images}} succeeded, {{or .status.running 0}} running, {{or .status.pending 0}} pending, {{or .status.failed 0}} failed' 2>/dev/null || true)
  printf '\r  [%3ds] %-70s' "$(($(date +%s) - start))" "$line" >&2
  case "$line" in Complete*|Failed*) break ;; esac
  [ $(($(date +%s) - start)) -lt 600 ] || { echo >&2; die "the job did not finish in 10 minutes: see $KUBECTL describe igj $JOB -n $NS"; }
  sleep 2
done
echo >&2

say "Where each image ran"
{
  printf 'IMAGE\tNODE\tGPU\tGPU MEMORY LOAD WHEN CHOSEN\tDURATION\tOUTPUT\n'
  "$KUBECTL" get igj "$JOB" -n "$NS" -o jsonpath='{range .status.images[*]}{.index}{"\t"}{.node}{"\t"}{.gpuIndex} ({.gpuUUID}){"\t"}{.gpuMemoryLoadPercent}%{"\t"}{.durationMilliseconds}ms{"\t"}{.outputPath}{"\n"}{end}' | sort -n
} | column -t -s $'\t'

say "Images per GPU, and the speed the operator learned for each GPU (seconds per megapixel-step)"
# The operator writes what it learned into the GPUNode every 10 s.
for _ in $(seq 30); do
  [ -n "$("$KUBECTL" get gpunode "$NODE" -o jsonpath='{.status.speeds}' 2>/dev/null)" ] && break
  sleep 1
done
{
  printf 'GPU	UUID	IMAGES OF THIS JOB	LEARNED S/MP-STEP	FROM IMAGES
'
  images=$("$KUBECTL" get igj "$JOB" -n "$NS" -o jsonpath='{range .status.images[*]}{.gpuUUID}{"\n"}{end}')
  speeds=$("$KUBECTL" get gpunode "$NODE" -o jsonpath='{range .status.learnedSpeeds[*]}{.uuid}{" "}{.secondsPerMegapixelStep}{" "}{.images}{"\n"}{end}')
  "$KUBECTL" get gpunode "$NODE" -o jsonpath='{range .status.gpus[*]}{.index}{" "}{.uuid}{"\n"}{end}' |
    while read -r index uuid; do
      n=$(grep -cx "$uuid" <<<"$images" || true)
      read -r _ spmps learned < <(grep "^$uuid " <<<"$speeds" || echo "- - -")
      printf '%s\t%s\t%s\t%s\t%s\n' "$index" "$uuid" "$n" "${spmps:--}" "${learned:--}"
    done
} | column -t -s $'\t'
"$KUBECTL" get gpunodes

phase=$("$KUBECTL" get igj "$JOB" -n "$NS" -o jsonpath='{.status.phase}')
cat >&2 <<EOF

The job is $phase. The PNGs are in $DEMO/out/$NS/$JOB/.
Use the cluster with:
  export KUBECONFIG=$KUBECONFIG
  $KUBECTL get igj,gpunodes -A
  $KUBECTL describe igj $JOB -n $NS      # the placement events
Stop it with: make demo-down
EOF
[ "$phase" = Complete ]
