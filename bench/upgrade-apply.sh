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
# Before each arm the workers go back to v1.19.16 (untimed). A watcher samples the Deployment's
# Ready pods every 0.5 s during each. RUNS=<n> (3) rounds of both arms; prints each round's wall
# times and ratio, where each arm's time went (runbook: drain / node upgrade / wait Ready /
# uncordon; kubemaint: its report's steps, and the rest — reading the cluster, writing the run
# record), the median ratio, and the lowest Ready count the watcher saw in each arm.
# DELAY=<ms> pod ready/shutdown delay (1000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p kubemaint -p kubemaint-lab --locked -q
D=$(mktemp -d /tmp/kubemaint-bench-upgrade.XXXXXX)
cp "${CARGO_TARGET_DIR:-target}/debug/kubemaint" "${CARGO_TARGET_DIR:-target}/debug/kubemaint-lab" "$D/"
# KEEP=DIR keeps the run logs, reports and watcher samples there.
trap '$D/kubemaint-lab down --dir $D/lab >/dev/null 2>&1 || true; [ -z "${KEEP:-}" ] || { mkdir -p "$KEEP"; cp $D/*.txt $D/*.log $D/*.json $D/*.err "$KEEP"/ 2>/dev/null; }; rm -rf "$D"' EXIT
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
lowest() { awk '$2 != "ERR" && $2 != "" { if (lo == "" || $2 < lo) lo = $2 } $2 == "ERR" || $2 == "" { err++ } END { printf "%s (unanswered samples: %d)", lo, err+0 }' "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
all_ready() { for i in $(seq 240); do [ "$(ready)" -ge 16 ] && return 0; sleep 0.5; done; echo "timeout: web not back at 16 Ready" >&2; return 1; }
reset_workers() {
  for n in $WORKERS; do $LAB node upgrade $n --kubelet-version v1.19.16 --dir $dir >/dev/null; done
  for n in $WORKERS; do wait_at $n v1.19.16; done
  all_ready
}
RUNS=${RUNS:-3}
ratios=()
for r in $(seq $RUNS); do
  reset_workers
  # 1. The runbook, one node at a time; each phase timed.
  t_drain=0 t_up=0 t_wait=0 t_unc=0
  w=$(watch $D/runbook-$r.txt)
  start=$(now)
  for n in $WORKERS; do
    t=$(now); k drain $n --ignore-daemonsets --delete-emptydir-data >/dev/null 2>>$D/runbook.err; t_drain=$(echo "$t_drain + $(since $t)" | bc)
    t=$(now); $LAB node upgrade $n --kubelet-version v1.20.2 --dir $dir >/dev/null; t_up=$(echo "$t_up + $(since $t)" | bc)
    t=$(now); wait_at $n v1.20.2; t_wait=$(echo "$t_wait + $(since $t)" | bc)
    t=$(now); k uncordon $n >/dev/null; t_unc=$(echo "$t_unc + $(since $t)" | bc)
  done
  runbook=$(since $start); kill $w
  all_ready

  # 2. Back to v1.19.16 (untimed), then kubemaint.
  reset_workers
  w=$(watch $D/kubemaint-$r.txt)
  start=$(now)
  $D/kubemaint upgrade apply --target v1.20.2 --executor command \
    --command "$LAB node upgrade {node} --kubelet-version {version} --dir $dir" \
    --max-unavailable 2 --yes --no-snapshot --log-file $D/run-$r.log -o json > $D/report-$r.json 2> $D/kubemaint-$r.err
  kubemaint=$(since $start); kill $w
  status=$(jq -r .status $D/report-$r.json)
  for n in $WORKERS; do node_at $n v1.20.2 || echo "NOT UPGRADED: $n"; done
  ratio=$(echo "scale=3; $kubemaint / $runbook" | bc)
  ratios+=("$ratio")
  printf 'round %d: runbook %.1f s (drain %.1f, node upgrade %.1f, wait Ready %.1f, uncordon %.1f); kubemaint %.1f s, status %s; ratio %.2f\n' \
    $r $runbook $t_drain $t_up $t_wait $t_unc $kubemaint "$status" $ratio
  # Where kubemaint's time went: its steps by action (a batch's node commands overlap: their
  # span is the batch's wall time, not their sum), and the rest of the wall time.
  jq -r '
    ([.steps[] | select(.action != "run-commands")] | group_by(.action)
      | map("\(.[0].action) \(map(.seconds) | add * 10 | round / 10)") | join(", ")) as $by
    | ([.steps[] | select(.action == "run-commands") | "\(.jobs[0].node) \(.seconds)"] | join(", ")) as $cmds
    | "  kubemaint steps (s): \($by); node commands (each, overlapping within a batch): \($cmds)"
  ' $D/report-$r.json
  all_ready
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "runbook (kubectl drain/upgrade/wait/uncordon, 1 node at a time): lowest Ready $(lowest $D/runbook-*.txt) of 16 (PDB minAvailable 14)"
echo "kubemaint upgrade apply --max-unavailable 2:                   lowest Ready $(lowest $D/kubemaint-*.txt) of 16"
echo "ratio kubemaint/runbook per round: ${ratios[*]}; median $median (goal <= 0.40)"
