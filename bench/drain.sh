#!/usr/bin/env bash
# Drain benchmark, kubectl 1.27 vs kubemaint, side by side on one lab run.
#
# A Deployment of $PODS pods (default 60) under a PDB with maxUnavailable 1 is put on one worker;
# simulated pods take $DELAY_MS (default 1500) to become Ready and to shut down. DEPLOYMENTS=N
# (default 1) splits the pods into N Deployments, each under its own PDB with maxUnavailable 1
# (a node running many small services: there kubectl's fixed 5 s retry per pod shows). kubectl drains
# worker-1, then the same setup is rebuilt on worker-2 and kubemaint drains it. Reported: wall
# time and number of API requests of each tool, counted by the API server itself (the lab's audit
# log, DIR/logs/audit.log: requests received during the drain whose userAgent starts with
# `kubectl` resp. `kubemaint/`), and kubemaint/kubectl ratios. KEEP=1 keeps the work dir
# (outputs, audit log, kubemaint's debug log with budget updates) for a timeline.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
pods=${PODS:-60}
deployments=${DEPLOYMENTS:-1}
per=$((pods / deployments))
delay=${DELAY_MS:-1500}
kubectl=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.27}
flag=""; [ "$profile" = release ] && flag=--release
cargo build $flag -p kubemaint -p kubemaint-lab --locked -q
target=${CARGO_TARGET_DIR:-target}
lab=$target/$profile/kubemaint-lab
km=$target/$profile/kubemaint
work=$(mktemp -d /tmp/kubemaint-bench-drain.XXXXXX)
# Private copies: the shared target dir may be rebuilt by someone else meanwhile.
cp "$lab" "$km" "$work/"; lab=$work/kubemaint-lab; km=$work/kubemaint
dir=$work/lab
trap '$lab down --dir "$dir" >/dev/null 2>&1 || true; [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"' EXIT
$lab up --dir "$dir" --workers 3 --ready-delay-ms "$delay" --shutdown-delay-ms "$delay" >/dev/null
export KUBECONFIG=$dir/admin.conf
k() { "$kubectl" "$@"; }
now() { date +%s.%N; }
iso() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }
audit=$dir/logs/audit.log
# Requests received in [$1, $2] whose user agent starts with $3 (one audit event per request).
count() {
  jq -r --arg a "$1" --arg b "$2" --arg ua "$3" \
    'select(.requestReceivedTimestamp >= $a and .requestReceivedTimestamp <= $b and ((.userAgent // "") | startswith($ua))) | .verb' \
    "$audit" | wc -l
}
verbs() {
  jq -r --arg a "$1" --arg b "$2" --arg ua "$3" \
    'select(.requestReceivedTimestamp >= $a and .requestReceivedTimestamp <= $b and ((.userAgent // "") | startswith($ua))) | "\(.verb) \(.objectRef.resource // "-")/\(.objectRef.subresource // "") \(.responseStatus.code)"' \
    "$audit" | sort | uniq -c | sort -rn
}

# Put the workload (namespace bench-$1) on node $2 only, wait until every pod is Ready, then make
# all workers schedulable again so evicted pods have somewhere to go.
setup() {
  local ns=bench-$1 node=$2
  for n in worker-1 worker-2 worker-3; do
    if [ "$n" = "$node" ]; then k uncordon "$n" >/dev/null; else k cordon "$n" >/dev/null; fi
  done
  k create namespace "$ns" >/dev/null
  for i in $(seq "$deployments"); do
    cat <<YAML
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app-$i, namespace: $ns}
spec:
  replicas: $per
  selector: {matchLabels: {app: app-$i}}
  template:
    metadata: {labels: {app: app-$i}}
    spec:
      terminationGracePeriodSeconds: 30
      containers: [{name: c, image: registry.example/app:1}]
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: app-$i, namespace: $ns}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: app-$i}}
YAML
  done | k apply -f - >/dev/null
  for i in $(seq "$deployments"); do
    k -n "$ns" rollout status "deploy/app-$i" --timeout=300s >/dev/null
  done
  for n in worker-1 worker-2 worker-3; do k uncordon "$n" >/dev/null; done
  # Let the disruption controller see every pod healthy.
  until [ "$(k -n "$ns" get pdb -o jsonpath='{range .items[*]}{.status.disruptionsAllowed}{"\n"}{end}' | grep -c '^1$')" = "$deployments" ]; do
    sleep 0.5
  done
  echo "setup: $(k -n "$ns" get pods --field-selector spec.nodeName="$node" --no-headers | wc -l) pods on $node" >&2
}

setup kubectl worker-1
a=$(iso); t=$(now)
k drain worker-1 --ignore-daemonsets --timeout=900s >"$work/kubectl.out" 2>"$work/kubectl.err"
kubectl_s=$(echo "$(now) - $t" | bc); b=$(iso)
sleep 1
kubectl_req=$(count "$a" "$b" kubectl)
verbs "$a" "$b" kubectl >"$work/kubectl.verbs"
k delete namespace bench-kubectl --wait=true >/dev/null
k uncordon worker-1 >/dev/null

setup kubemaint worker-2
a=$(iso); t=$(now)
RUST_LOG=kubemaint=debug "$km" drain worker-2 --ignore-daemonsets --timeout=900s \
  >"$work/kubemaint.out" 2>"$work/kubemaint.err"
km_s=$(echo "$(now) - $t" | bc); b=$(iso)
sleep 1
km_req=$(count "$a" "$b" kubemaint/)
verbs "$a" "$b" kubemaint/ >"$work/kubemaint.verbs"
[ "$km_req" -gt 0 ] || { echo "no kubemaint/ requests in the audit log: is the user agent set?" >&2; exit 1; }

printf 'pods on the node: %s in %s Deployment(s), each under a PDB with maxUnavailable 1; Ready/shutdown delay: %s ms\n' \
  "$((per * deployments))" "$deployments" "$delay"
printf '%-10s %10s %10s\n' tool wall_s requests
printf '%-10s %10.1f %10d\n' kubectl "$kubectl_s" "$kubectl_req"
printf '%-10s %10.1f %10d\n' kubemaint "$km_s" "$km_req"
printf 'ratio kubemaint/kubectl: wall %.2f, requests %.2f\n' \
  "$(echo "$km_s / $kubectl_s" | bc -l)" "$(echo "$km_req / $kubectl_req" | bc -l)"
echo "kubectl: $(tail -n 1 "$work/kubectl.out")   kubemaint: $(tail -n 1 "$work/kubemaint.out")"
echo "requests by verb, resource/subresource, code:"
echo "kubectl:"; sed 's/^/  /' "$work/kubectl.verbs"
echo "kubemaint:"; sed 's/^/  /' "$work/kubemaint.verbs"
# Where kubemaint's time goes: its reaction to the budget vs the cluster's own pace.
# (With one budget the cluster's pace is one eviction per replacement Ready: the floor for any client.)
if [ "$deployments" = 1 ]; then
  python3 bench/drain_timeline.py "$work/kubemaint.err" "$audit" kubemaint/ || true
fi
