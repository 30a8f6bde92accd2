#!/usr/bin/env bash
# Node-pool drain, side by side: 8 workers, 3 Deployments (8 replicas, PDB minAvailable 6), a
# StatefulSet (4 replicas, PDB maxUnavailable 1), a DaemonSet; worker-1..4 labelled pool=blue.
# A watcher samples every 0.5 s the Ready pods of each workload against its PDB minimum while
# one tool drains the pool: TOOL=kubectl (kubectl 1.27 `drain -l`, sequential) or TOOL=kubemaint
# with N=<--max-parallel-nodes> (default 4). Prints wall time, the lowest Ready count per
# workload, samples below a minimum, pods left on the pool, and the tool's API requests (lab
# audit log). Run it once per tool and divide. DELAY=<ms> pod ready/shutdown delay (1000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p kubemaint -p kubemaint-lab --locked -q
D=$(mktemp -d /tmp/kubemaint-bench-pool.XXXXXX)
cp "${CARGO_TARGET_DIR:-target}/debug/kubemaint" "${CARGO_TARGET_DIR:-target}/debug/kubemaint-lab" "$D/"
trap '$D/kubemaint-lab down --dir $D/lab >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
K=/usr/lib/google-cloud-sdk/bin/kubectl.1.27
dir=$D/lab
$D/kubemaint-lab up --dir $dir --workers 8 --ready-delay-ms ${DELAY:-1000} --shutdown-delay-ms ${DELAY:-1000} >/dev/null
export KUBECONFIG=$dir/admin.conf
k() { $K "$@"; }
for i in 1 2 3 4; do k label node worker-$i pool=blue >/dev/null; done
k create namespace proof >/dev/null
{
for app in a b c; do cat <<Y
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: $app, namespace: proof}
spec:
  replicas: 8
  selector: {matchLabels: {app: $app}}
  template:
    metadata: {labels: {app: $app}}
    spec:
      terminationGracePeriodSeconds: 10
      topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: $app}}}]
      containers: [{name: c, image: registry.example/$app:1}]
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: $app, namespace: proof}
spec: {minAvailable: 6, selector: {matchLabels: {app: $app}}}
Y
done
cat <<Y
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s, namespace: proof}
spec:
  serviceName: s
  replicas: 4
  selector: {matchLabels: {app: s}}
  template:
    metadata: {labels: {app: s}}
    spec:
      terminationGracePeriodSeconds: 10
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
} | k apply -f - >/dev/null
# Wait until every workload is Ready.
for i in $(seq 120); do
  ready=$(k get pods -n proof -o json | jq '[.items[] | select(.metadata.deletionTimestamp == null) | select(any(.status.conditions[]?; .type=="Ready" and .status=="True"))] | length')
  [ "$ready" -ge $((24 + 4 + 8)) ] && break; sleep 1
done
echo "ready pods: $ready"
# Watcher: Ready, not terminating pods per app; minimum allowed: a,b,c 6; s 3.
( while :; do
    k get pods -n proof -o json 2>/dev/null | jq -r --arg t "$(date +%s.%N)" '[.items[] | select(.metadata.deletionTimestamp == null) | select(any(.status.conditions[]?; .type=="Ready" and .status=="True")) | .metadata.labels.app] | group_by(.) | map("\(.[0])=\(length)") | "\($t) " + join(" ")'
    sleep 0.5
  done ) > $D/samples.txt &
watcher=$!
start=$(date +%s.%N)
set +e
if [ "${TOOL:-kubemaint}" = kubectl ]; then
  $K drain -l pool=blue --ignore-daemonsets > $D/report.txt 2> $D/stderr.txt
else
  $D/kubemaint drain -l pool=blue --ignore-daemonsets --max-parallel-nodes ${N:-4} -o json > $D/report.json 2> $D/stderr.txt
fi
rc=$?
set -e
end=$(date +%s.%N)
sleep 1; kill $watcher
echo "${TOOL:-kubemaint} rc=$rc wall=$(echo "$end - $start" | bc) s"
echo "samples: $(wc -l < $D/samples.txt)"
awk '{ for (i=2;i<=NF;i++) { split($i,a,"="); min=(a[1]=="s")?3:6; if (a[2]<min) { bad++; print "BELOW MIN:", $0 } ; if (!(a[1] in lo) || a[2]<lo[a[1]]) lo[a[1]]=a[2] } } END { for (x in lo) printf "lowest ready %s=%d\n", x, lo[x]; print "samples below minimum:", bad+0 }' $D/samples.txt
echo "pods of proof (non-DaemonSet) left on pool=blue nodes:"
k get pods -n proof -o json | jq -r '.items[] | select(.metadata.labels.app != "ds") | .spec.nodeName' | grep -cE '^worker-[1-4]$' || true
[ "${TOOL:-kubemaint}" = kubectl ] || jq -r '.nodes[] | "\(.node) \(.status) started=\(.started) finished=\(.finished) seconds=\(.seconds|floor) pods=\(.pods|length)"' $D/report.json
echo "API requests by the drain tool: $(jq -r 'select((.userAgent // "") | startswith("'${TOOL:-kubemaint}'")) | .verb' $dir/logs/audit.log | wc -l)"
