#!/usr/bin/env bash
# `kubemaint upgrade plan` cost, two ways:
#  1. the pure work on a big cluster held in memory (5 000 nodes, 150 000 pods, 3 000 PDBs:
#     skew check, a four-minor path, the drain PDB and capacity preflights), as CPU time (goal: < 2 s);
#  2. the requests the command makes against the real lab, counted in the apiserver's audit
#     log, with the lab's seed workload and again with EXTRA_PODS more pods: only the paged
#     pod list may grow (one request per 500 pods).
# Usage: bench/upgrade-plan.sh [NODES] [PODS]    (EXTRA_PODS=1200, RUNS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-5000}
pods=${2:-150000}
extra=${EXTRA_PODS:-1200}
runs=${RUNS:-3}

cargo build --release --locked -p kubemaint-core --example upgrade_plan_bench
cargo build --release --locked --bins
echo "== pure plan computation: $nodes nodes, $pods pods, $runs runs"
# The example prints its own CPU time per part ("cpu ...: U s user + S s sys"): building the
# objects in memory apart from the plan computation; /usr/bin/time adds the whole process.
plan_cpu=()
for run in $(seq "$runs"); do
  out=$(/usr/bin/time -f "run $run: %U s user + %S s sys CPU for the whole process, %e s wall, %M KiB max RSS" \
    target/release/examples/upgrade_plan_bench "$nodes" "$pods" 1 2>&1)
  echo "$out"
  plan_cpu+=("$(echo "$out" | awk '/^cpu plan computation/ {print $(NF-6) + $(NF-2)}')")
done
printf '%s\n' "${plan_cpu[@]}" | sort -n | awk -v goal=2 '{v[NR] = $1} END {
  m = v[int((NR + 1) / 2)];
  printf "plan computation (user + sys CPU), median of %d: %.2f s = %.2fx the %d s goal (min %.2f, max %.2f)\n", NR, m, m / goal, goal, v[1], v[NR]}'

dir=$(mktemp -d /tmp/kubemaint-bench-upgrade.XXXXXX)
trap 'target/release/kubemaint-lab down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
target/release/kubemaint-lab up --dir "$dir" --workers 3 --seed >/dev/null
export KUBECONFIG=$dir/admin.conf
audit=$dir/logs/audit.log
# Requests received in [$1, $2] from kubemaint (one audit event per request), by verb and resource.
requests() {
  jq -r --arg a "$1" --arg b "$2" \
    'select(.requestReceivedTimestamp >= $a and .requestReceivedTimestamp <= $b and ((.userAgent // "") | startswith("kubemaint/"))) | "\(.verb) \(.objectRef.resource // .requestURI)"' \
    "$audit" | sort | uniq -c | sort -rn
}
plan() {
  local a b
  a=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
  # Exit 3 = plan printed, a check fails (the seed's policy/v1beta1 PDBs block 1.25): expected.
  local rc=0
  target/release/kubemaint upgrade plan --to-minor 1.25 --pki-dir "$dir/pki" -o json >/dev/null || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "upgrade plan failed (exit $rc)" >&2; exit 1; }
  b=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
  sleep 1   # the apiserver writes audit events after the response; a measurement, not a test
  echo "requests by kubemaint: $(requests "$a" "$b" | awk '{n += $1} END {print n}')"
  requests "$a" "$b"
}
echo "== requests against the lab (seed workload)"
plan
echo "== requests against the lab with $extra more pods"
kubectl create namespace bench-extra >/dev/null
kubectl create deployment filler -n bench-extra --image=registry.example/filler:1 --replicas="$extra" >/dev/null
until [ "$(kubectl get pods -n bench-extra --no-headers 2>/dev/null | wc -l)" -ge "$extra" ]; do sleep 2; done
plan
