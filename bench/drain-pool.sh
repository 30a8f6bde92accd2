#!/usr/bin/env bash
# Node-pool drain, side by side on one lab: kubectl 1.27 `drain -l pool=blue` (one node after
# another) against `kubemaint drain -l pool=blue --max-parallel-nodes N` (default 4).
#
# Layout (the issue's "8 nodes x 10 pods"): POOL=8 workers labelled pool=blue plus STAY=4 that
# stay; 3 Deployments of 3*POOL replicas (PDB minAvailable 75%) and a StatefulSet of STS=POOL
# replicas (PDB maxUnavailable 1), all preferring the pool and spread over it (3+1 pods per pool
# node), and a DaemonSet (ignored): 10 evictable pods per pool node. Pods take DELAY ms
# (default 1500) to become Ready and to shut down.
#
# Each tool drains the same fresh layout (namespace recreated, pool uncordoned in between).
# A watcher (kubectl 1.28, so its requests are not counted as the drain tool's) samples every
# 0.5 s the Ready pods of each workload. Printed per tool: wall time, API requests during the
# drain (lab audit log, by user agent), the minimum PDB headroom (Ready minus the budget's
# minimum, lowest sample), samples below a minimum, pods left on the pool; then the ratios,
# kubemaint's per-node timeline, and the physical floor computed from the layout: with a budget
# allowing d disruptions, a workload's m pods on the pool move d at a time, each batch waiting
# for its replacements to be Ready (a StatefulSet's replacement is created only once the old pod
# is gone), so it needs (ceil(m/d)-1) cycles plus one shutdown; no client can be faster.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p kubemaint -p kubemaint-lab --locked -q
D=$(mktemp -d /tmp/kubemaint-bench-pool.XXXXXX)
cp "${CARGO_TARGET_DIR:-target}/debug/kubemaint" "${CARGO_TARGET_DIR:-target}/debug/kubemaint-lab" "$D/"
trap '$D/kubemaint-lab down --dir $D/lab >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
K=/usr/lib/google-cloud-sdk/bin/kubectl.1.27
KW=/usr/lib/google-cloud-sdk/bin/kubectl.1.28
POOL=${POOL:-8}
STAY=${STAY:-4}
STS=${STS:-$POOL}
N=${N:-4}
DELAY=${DELAY:-1500}
REPLICAS=$((3 * POOL))
MIN_DEPLOY=$(( (REPLICAS * 3 + 3) / 4 ))   # minAvailable 75%, rounded up as the API does
dir=$D/lab
echo "machine load before: $(cut -d' ' -f1-3 /proc/loadavg)"
$D/kubemaint-lab up --dir $dir --workers $((POOL + STAY)) --ready-delay-ms $DELAY --shutdown-delay-ms $DELAY >/dev/null
export KUBECONFIG=$dir/admin.conf
k() { $K "$@"; }
for i in $(seq $POOL); do k label node worker-$i pool=blue >/dev/null; done

workloads() {
for app in a b c; do cat <<Y
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: $app, namespace: proof}
spec:
  replicas: $REPLICAS
  selector: {matchLabels: {app: $app}}
  template:
    metadata: {labels: {app: $app}}
    spec:
      terminationGracePeriodSeconds: 10
      affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 100, preference: {matchExpressions: [{key: pool, operator: In, values: [blue]}]}}]}}
      topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: $app}}}]
      containers: [{name: c, image: registry.example/$app:1}]
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: $app, namespace: proof}
spec: {minAvailable: "75%", selector: {matchLabels: {app: $app}}}
Y
done
cat <<Y
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s, namespace: proof}
spec:
  serviceName: s
  replicas: $STS
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: s}}
  template:
    metadata: {labels: {app: s}}
    spec:
      terminationGracePeriodSeconds: 10
      affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 100, preference: {matchExpressions: [{key: pool, operator: In, values: [blue]}]}}]}}
      topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: s}}}]
      containers: [{name: c, image: registry.example/s:1}]
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: s, namespace: proof}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: s}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds, namespace: proof}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: {labels: {app: ds}}
    spec:
      containers: [{name: c, image: registry.example/ds:1}]
Y
}

ready_count() {
  k get pods -n proof -o json | jq '[.items[] | select(.metadata.deletionTimestamp == null) | select(any(.status.conditions[]?; .type=="Ready" and .status=="True"))] | length'
}
want=$((3 * REPLICAS + STS + POOL + STAY))

# Fresh layout: namespace recreated, pool uncordoned; waits until every pod is Ready.
setup() {
  k delete namespace proof --ignore-not-found --wait=true >/dev/null
  for i in $(seq $POOL); do k uncordon worker-$i >/dev/null; done
  k create namespace proof >/dev/null
  workloads | k apply -f - >/dev/null
  for _ in $(seq 300); do
    ready=$(ready_count)
    [ "$ready" -ge $want ] && break; sleep 1
  done
  [ "$ready" -ge $want ] || { echo "only $ready of $want pods Ready"; exit 1; }
}

# Pods of each workload on the pool, and each budget's allowed disruptions: "app kind m d".
layout() {
  k get pods -n proof -o json | jq -r --argjson pool "$POOL" '.items[] | select(.metadata.labels.app != "ds") | select((.spec.nodeName | ltrimstr("worker-") | tonumber? // 999) <= $pool) | .metadata.labels.app' | sort | uniq -c |
  while read -r m app; do
    d=$(k get pdb -n proof $app -o jsonpath='{.status.disruptionsAllowed}')
    kind=Deployment; [ $app = s ] && kind=StatefulSet
    echo "$app $kind $m $d"
  done
}

run_tool() { # tool -> prints "wall requests" and leaves samples/report in $D
  local tool=$1
  ( while :; do
      $KW get pods -n proof -o json 2>/dev/null | jq -r --arg t "$(date +%s.%N)" '[.items[] | select(.metadata.deletionTimestamp == null) | select(any(.status.conditions[]?; .type=="Ready" and .status=="True")) | .metadata.labels.app] | group_by(.) | map("\(.[0])=\(length)") | "\($t) " + join(" ")'
      sleep 0.5
    done ) > $D/samples-$tool.txt &
  local watcher=$!
  local before; before=$(wc -l < $dir/logs/audit.log)
  local start end rc
  start=$(date +%s.%N)
  set +e
  if [ $tool = kubectl ]; then
    $K drain -l pool=blue --ignore-daemonsets > $D/out-$tool.txt 2> $D/err-$tool.txt
  else
    $D/kubemaint drain -l pool=blue --ignore-daemonsets --max-parallel-nodes $N -o json > $D/report.json 2> $D/err-$tool.txt
  fi
  rc=$?
  set -e
  end=$(date +%s.%N)
  sleep 1; kill $watcher; wait $watcher 2>/dev/null || true
  local ua=$tool; [ $tool = kubectl ] && ua=kubectl.1.27/
  local requests
  requests=$(tail -n +$((before + 1)) $dir/logs/audit.log | jq -r --arg ua "$ua" 'select((.userAgent // "") | startswith($ua)) | .verb' | wc -l)
  local left
  left=$(k get pods -n proof -o json | jq -r --argjson pool "$POOL" '[.items[] | select(.metadata.labels.app != "ds") | select((.spec.nodeName | ltrimstr("worker-") | tonumber? // 999) <= $pool)] | length')
  local headroom below
  headroom=$(awk -v md=$MIN_DEPLOY -v ms=$((STS - 1)) '{ for (i=2;i<=NF;i++) { split($i,a,"="); if (a[1]=="ds") continue; min=(a[1]=="s")?ms:md; h=a[2]-min; if (!(a[1] in lo) || h<lo[a[1]]) lo[a[1]]=h } } END { s=""; for (x in lo) s=s x "=" lo[x] " "; print s }' $D/samples-$tool.txt)
  below=$(awk -v md=$MIN_DEPLOY -v ms=$((STS - 1)) '{ for (i=2;i<=NF;i++) { split($i,a,"="); if (a[1]=="ds") continue; min=(a[1]=="s")?ms:md; if (a[2]<min) bad++ } } END { print bad+0 }' $D/samples-$tool.txt)
  echo "$tool: rc=$rc wall=$(echo "$end - $start" | bc) s, requests=$requests, samples=$(wc -l < $D/samples-$tool.txt), below minimum=$below, lowest headroom: $headroom, pods left on the pool=$left" | tee -a $D/summary.txt
  echo "$(echo "$end - $start" | bc) $requests" > $D/figures-$tool.txt
}

setup
layout | tee $D/layout.txt | sed 's/^/layout: /'
run_tool kubectl
setup
run_tool kubemaint
read -r kw kr < $D/figures-kubectl.txt
read -r mw mr < $D/figures-kubemaint.txt
echo "ratio kubemaint/kubectl: wall $(echo "scale=2; $mw / $kw" | bc)x, requests $(echo "scale=2; $mr / $kr" | bc)x"
echo "kubemaint per node (seconds after the cordons):"
jq -r '.nodes[] | "  \(.node) \(.status) +\(.started_after_seconds*10|floor/10)s .. +\(.finished_after_seconds*10|floor/10)s held up by: \([.held_up[] | "\(if .cause.kind == "budget" then "PDB " + .cause.pdb else .cause.kind end) (\(.pods) pods, up to \(.longest_seconds*10|floor/10)s)"] | join(", "))"' $D/report.json
# The floor: per workload (ceil(m/d)-1) cycles + one shutdown; the slowest workload bounds the run.
floor=$(awk -v r=$DELAY -v s=$DELAY '{ m=$3; d=($4>0)?$4:1; cyc=($2=="StatefulSet")?(s+r):r; n=int((m+d-1)/d); f=((n-1)*cyc+s)/1000; printf "floor: %s (%s, %d pods on the pool, %d at a time): %d cycle(s) of %.1f s + %.1f s shutdown = %.1f s\n", $1, $2, m, d, n-1, cyc/1000, s/1000, f > "/dev/stderr"; if (f>max) max=f } END { print max }' $D/layout.txt)
echo "physical floor (slowest workload, no controller latency): $floor s; kubemaint measured $mw s = $(echo "scale=2; $mw / $floor" | bc)x the floor"
echo "best possible ratio against this kubectl run: floor/kubectl = $(echo "scale=2; $floor / $kw" | bc)x (goal 0.3x)"
echo "machine load after: $(cut -d' ' -f1-3 /proc/loadavg)"
