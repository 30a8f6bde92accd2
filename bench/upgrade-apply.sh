#!/usr/bin/env bash
# Rolling kubelet upgrade of 8 workers, side by side on one lab (1 control plane at v1.20.2,
# workers' kubelets at v1.19.16; a Deployment of 16 replicas under a PDB minAvailable 14,
# spread over the workers):
#   runbook   — the kubeadm documentation's manual worker procedure in a shell loop, one node at
#               a time: kubectl drain --ignore-daemonsets --delete-emptydir-data, the node's
#               upgrade (`kubemaint-lab node upgrade NODE --kubelet-version v1.20.2`), wait until
#               the node is Ready at the new version, kubectl uncordon;
#   kubemaint — `kubemaint upgrade apply --target v1.20.2 --max-unavailable 2` with the same
#               node command through the command executor.
# Between the two the workers go back to v1.19.16. A watcher samples the Deployment's Ready pods
# every 0.5 s during each. Prints each wall time, the ratio kubemaint/runbook, and the lowest
# Ready count seen by the watcher in both. DELAY=<ms> pod ready/shutdown delay (1000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p kubemaint -p kubemaint-lab --locked -q
D=$(mktemp -d /tmp/kubemaint-bench-upgrade.XXXXXX)
cp "${CARGO_TARGET_DIR:-target}/debug/kubemaint" "${CARGO_TARGET_DIR:-target}/debug/kubemaint-lab" "$D/"
trap '$D/kubemaint-lab down --dir $D/lab >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
K=/usr/lib/google-cloud-sdk/bin/kubectl.1.27
dir=$D/lab
LAB="$D/kubemaint-lab"
$LAB up --dir $dir --workers 8 --kubelet-version v1.19.16 --ready-delay-ms ${DELAY:-1000} --shutdown-delay-ms ${DELAY:-1000} >/dev/null
export KUBECONFIG=$dir/admin.conf
k() { $K "$@"; }
WORKERS="worker-1 worker-2 worker-3 worker-4 worker-5 worker-6 worker-7 worker-8"
# Both runs upgrade the 8 workers only: the control-plane node's kubelet goes first, untimed.
$LAB node upgrade cp-1 --kubelet-version v1.20.2 --dir $dir >/dev/null
node_at() { [ "$(k get node $1 -o jsonpath='{.status.nodeInfo.kubeletVersion}{" "}{.status.conditions[?(@.type=="Ready")].status}')" = "$2 True" ]; }
wait_at() { for i in $(seq 600); do node_at $1 $2 && return 0; sleep 0.2; done; echo "timeout: $1 at $2" >&2; return 1; }
wait_at cp-1 v1.20.2
cat <<Y | k apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 16
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}}]
      containers: [{name: c, image: registry.example/web:1}]
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec: {minAvailable: 14, selector: {matchLabels: {app: web}}}
Y
ready() { k get pods -l app=web -o json 2>/dev/null | jq '[.items[] | select(.metadata.deletionTimestamp == null) | select(any(.status.conditions[]?; .type=="Ready" and .status=="True"))] | length'; }
for i in $(seq 240); do [ "$(ready)" -ge 16 ] && break; sleep 0.5; done
echo "ready pods: $(ready)"
watch() { ( while :; do echo "$(date +%s.%N) $(ready || echo ERR)"; sleep 0.5; done ) > $1 & echo $!; }
lowest() { awk '$2 != "ERR" && $2 != "" { if (lo == "" || $2 < lo) lo = $2 } $2 == "ERR" || $2 == "" { err++ } END { printf "%s (unanswered samples: %d)", lo, err+0 }' $1; }

# 1. The runbook, one node at a time.
w=$(watch $D/runbook.txt)
start=$(date +%s.%N)
for n in $WORKERS; do
  k drain $n --ignore-daemonsets --delete-emptydir-data >/dev/null 2>>$D/runbook.err
  $LAB node upgrade $n --kubelet-version v1.20.2 --dir $dir >/dev/null
  wait_at $n v1.20.2
  k uncordon $n >/dev/null
done
end=$(date +%s.%N); kill $w
runbook=$(echo "$end - $start" | bc)
for i in $(seq 240); do [ "$(ready)" -ge 16 ] && break; sleep 0.5; done

# 2. Back to v1.19.16 (untimed), then kubemaint.
for n in $WORKERS; do $LAB node upgrade $n --kubelet-version v1.19.16 --dir $dir >/dev/null; done
for n in $WORKERS; do wait_at $n v1.19.16; done
for i in $(seq 240); do [ "$(ready)" -ge 16 ] && break; sleep 0.5; done
w=$(watch $D/kubemaint.txt)
start=$(date +%s.%N)
$D/kubemaint upgrade apply --target v1.20.2 --executor command \
  --command "$LAB node upgrade {node} --kubelet-version {version} --dir $dir" \
  --max-unavailable 2 --yes --no-snapshot --log-file $D/run.log -o json > $D/report.json 2> $D/kubemaint.err
end=$(date +%s.%N); kill $w
kubemaint=$(echo "$end - $start" | bc)
echo "runbook (kubectl drain/upgrade/wait/uncordon, 1 node at a time): wall ${runbook} s, lowest Ready $(lowest $D/runbook.txt) of 16 (PDB minAvailable 14)"
echo "kubemaint upgrade apply --max-unavailable 2:                   wall ${kubemaint} s, lowest Ready $(lowest $D/kubemaint.txt) of 16, status $(jq -r .status $D/report.json)"
echo "ratio kubemaint/runbook: $(echo "scale=2; $kubemaint / $runbook" | bc)"
for n in $WORKERS; do node_at $n v1.20.2 || echo "NOT UPGRADED: $n"; done
