#!/usr/bin/env bash
# The main job on the lab: bring a real control plane up with a demo workload, then run a
# maintenance round on it with kubemaint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --bins --locked
bin=target/release
export KUBEMAINT_LAB_DIR=${KUBEMAINT_LAB_DIR:-/tmp/kubemaint-demo}
$bin/kubemaint-lab prepare
$bin/kubemaint-lab down >/dev/null 2>&1 || true
$bin/kubemaint-lab up --workers 3 --seed
trap '$bin/kubemaint-lab down' EXIT
eval "$($bin/kubemaint-lab env)"
$bin/kubemaint-lab status
kubectl get pods -n demo -o wide
if $bin/kubemaint drain --help >/dev/null 2>&1 && ! $bin/kubemaint drain worker-1 --help 2>&1 | grep -q 'being implemented'; then
  echo "== maintenance round: drain worker-1 (plan first), then uncordon"
  $bin/kubemaint drain worker-1 --ignore-daemonsets --delete-emptydir-data --force --dry-run=client || true
  $bin/kubemaint drain worker-1 --ignore-daemonsets --delete-emptydir-data --force
  kubectl get pods -n demo -o wide
  $bin/kubemaint uncordon worker-1
  echo "== etcd backup: save, status, verify"
  $bin/kubemaint etcd snapshot save /tmp/kubemaint-demo-etcd.db --pki-dir "$KUBEMAINT_LAB_DIR/pki" --endpoints "$ETCDCTL_ENDPOINTS"
  $bin/kubemaint etcd snapshot status /tmp/kubemaint-demo-etcd.db
  $bin/kubemaint etcd snapshot verify /tmp/kubemaint-demo-etcd.db
fi
