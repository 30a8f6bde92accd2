#!/usr/bin/env bash
# The main job on the lab: bring a real control plane up with a demo workload, then run a
# maintenance round on it with kubemaint: back up etcd (snapshot, then an encrypted backup
# restored into a new data dir), plan the next Kubernetes upgrade, drain a worker (plan first),
# bring it back, then upgrade the whole cluster node by node.
# The lab starts at a v1.19.16 *stand-in* (the real v1.20.2 code relinked with another version
# stamp) so that the upgrade to v1.20.2 lands on the real binaries; kubelets are simulated.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ -z "${KUBEMAINT_BIN_DIR:-}" ]; then
  cargo build --release --bins --locked
  KUBEMAINT_BIN_DIR=target/release
fi
bin=$KUBEMAINT_BIN_DIR
export KUBEMAINT_LAB_DIR=${KUBEMAINT_LAB_DIR:-/tmp/kubemaint-demo}
backup=${KUBEMAINT_DEMO_BACKUP:-/tmp/kubemaint-demo-etcd.db}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "prepare the lab's binaries (cached after the first run)"
$bin/kubemaint-lab prepare
$bin/kubemaint-lab down >/dev/null 2>&1 || true
step "bring the lab up: v1.19.16 stand-in control plane (v1.20.2 code, relinked version stamp), etcd 3.4.23 with TLS, 1 control plane + 3 simulated workers, demo workload"
$bin/kubemaint-lab up --workers 3 --seed --kubernetes-version v1.19.16
trap '$bin/kubemaint-lab down' EXIT
eval "$($bin/kubemaint-lab env)"
$bin/kubemaint-lab status
kubectl get pods -n demo -o wide

step "back up etcd first (kubeadm layout: certificates found under --pki-dir)"
$bin/kubemaint etcd snapshot save "$backup" --pki-dir "$KUBEMAINT_LAB_DIR/pki" --endpoints "$ETCDCTL_ENDPOINTS"
$bin/kubemaint etcd snapshot verify "$backup"
$bin/kubemaint etcd snapshot status "$backup"

step "regular backup: the snapshot streamed through zstd and age (passphrase) into a backup store; retention keeps 3"
store=${KUBEMAINT_DEMO_STORE:-/tmp/kubemaint-demo-backups}
rm -rf "$store" "$store.restored"
install -d -m 0700 "$store.keys"
[ -s "$store.keys/pass" ] || (umask 077; head -c 32 /dev/urandom | base64 > "$store.keys/pass")
$bin/kubemaint backup run --to "$store" --pki-dir "$KUBEMAINT_LAB_DIR/pki" --endpoints "$ETCDCTL_ENDPOINTS" \
  --passphrase-file "$store.keys/pass" --keep-last 3
$bin/kubemaint backup list --from "$store"
step "restore that backup by its ID into a new data dir (decrypt, decompress, SHA-256 checked; the lab's etcd keeps running)"
id=$($bin/kubemaint backup list --from "$store" -o json | jq -r '.backups[-1].id')
$bin/kubemaint etcd snapshot restore "$id" --from "$store" --passphrase-file "$store.keys/pass" \
  --data-dir "$store.restored" --name cp-1 \
  --initial-cluster cp-1=https://127.0.0.1:2380 --initial-advertise-peer-urls https://127.0.0.1:2380

step "plan the Kubernetes upgrade two minors ahead: versions per node, skew, path one minor at a time, preflight (touches nothing)"
# Exit 3: the plan is printed but a preflight check fails (the demo's bare pod, PDBs at their
# limit...): the plan is for reading here, so only 0 and 3 are accepted.
rc=0
$bin/kubemaint upgrade plan --target v1.21.14 --pki-dir "$KUBEMAINT_LAB_DIR/pki" --backup-dir "$(dirname "$backup")" || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ]

step "plan the drain of worker-1 (touches nothing)"
$bin/kubemaint drain worker-1 --ignore-daemonsets --delete-emptydir-data --force --dry-run=client
step "drain worker-1"
$bin/kubemaint drain worker-1 --ignore-daemonsets --delete-emptydir-data --force
kubectl get pods -n demo -o wide
step "maintenance done: uncordon worker-1"
$bin/kubemaint uncordon worker-1
kubectl get nodes

step "upgrade the cluster to v1.20.2 (the real binaries), node by node: etcd snapshot first, control plane, then each worker drained, upgraded, back"
# upgrade apply drains like kubectl drain --ignore-daemonsets: without --force a bare pod would stop it at
# its node (the drain above removed the demo's with --force); the seed's cache pod has emptyDir scratch data,
# so --delete-emptydir-data says that data may go. The lab's own node upgrade is the command each node runs.
kubectl delete pod -n demo debug --ignore-not-found --wait=true
$bin/kubemaint upgrade apply --target v1.20.2 --max-unavailable 1 --yes --delete-emptydir-data \
  --pki-dir "$KUBEMAINT_LAB_DIR/pki" --backup-dir "$(dirname "$backup")" --log-file /tmp/kubemaint-demo-upgrade.log \
  --executor command --command "$bin/kubemaint-lab node upgrade {node} --kubernetes-version {version} --dir $KUBEMAINT_LAB_DIR"
kubectl get nodes
$bin/kubemaint-lab status
