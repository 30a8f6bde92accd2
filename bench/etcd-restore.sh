#!/usr/bin/env bash
# Restore benchmark: `etcdutl snapshot restore` (3.5.1) vs `kubemaint etcd snapshot restore` on
# the same snapshot of a real etcd 3.5.1 filled with Kubernetes-like keys and values.
#
#   bench/etcd-restore.sh [SIZE_MB]      (default 1024; RUNS=3 runs each, alternating)
#
# Prints wall time and peak RSS (/usr/bin/time -v) per run, the medians, and the ratios
# etcdutl/kubemaint. Both tools run with a warm page cache. kubemaint runs with
# --no-kubernetes-defaults so both do the same work (no revision bump); a run with the Kubernetes
# defaults (bump + mark compacted) is reported separately.
# Set KEEP_SNAPSHOT=path to reuse/keep the generated snapshot between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
runs=${RUNS:-3}
cache=${KUBEMAINT_LAB_CACHE:-$HOME/.cache/kubemaint-lab}
etcd=$cache/etcd-v3.5.1/etcd
etcdctl=$cache/etcd-v3.5.1/etcdctl
etcdutl=$cache/etcd-v3.5.1/etcdutl
for b in "$etcd" "$etcdctl" "$etcdutl" /usr/bin/time; do
  [ -x "$b" ] || { echo "missing $b: run kubemaint-lab prepare (and apt-get install time)" >&2; exit 2; }
done
cargo build --release -p kubemaint --locked -q
km=${CARGO_TARGET_DIR:-target}/release/kubemaint

work=$(mktemp -d /tmp/kubemaint-bench-restore.XXXXXX)
etcd_pid=
cleanup() { [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
snap=${KEEP_SNAPSHOT:-$work/snap.db}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ ! -f "$snap" ]; then
  cport=$(free_port); pport=$(free_port)
  "$etcd" --data-dir "$work/src" --listen-client-urls "http://127.0.0.1:$cport" \
    --advertise-client-urls "http://127.0.0.1:$cport" --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" --initial-cluster "default=http://127.0.0.1:$pport" \
    --quota-backend-bytes $((16 * 1024 * 1024 * 1024)) --snapshot-count 1000000 >"$work/etcd.log" 2>&1 &
  etcd_pid=$!
  ctl() { ETCDCTL_API=3 "$etcdctl" --endpoints "http://127.0.0.1:$cport" "$@"; }
  for _ in $(seq 50); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
  echo "filling etcd to ~${size_mb} MiB (Kubernetes-like keys, 1-12 KiB values)..."
  # Each etcdctl txn carries 100 puts (< etcd's 1.5 MiB request limit); values are random text.
  python3 - "$size_mb" <<'PY' | while IFS= read -r -d $'\0' script; do printf '%s' "$script" | ctl txn >/dev/null; done
import os, random, sys, base64
target = int(sys.argv[1]) * 1024 * 1024
random.seed(1)
written, n = 0, 0
kinds = ["pods", "configmaps", "secrets", "events", "leases", "replicasets", "endpointslices"]
while written < target:
    lines = [""]  # no compares; then the success ops
    for _ in range(100):
        kind = kinds[n % len(kinds)]
        size = random.randint(1024, 12 * 1024)
        val = base64.b64encode(os.urandom(size * 3 // 4)).decode()
        lines.append(f"put /registry/{kind}/ns-{n % 50}/obj-{n:08d} {val}")
        written += size + 60
        n += 1
    lines += ["", ""]
    sys.stdout.write("\n".join(lines) + "\n\0")
PY
  ctl endpoint status -w table
  ctl snapshot save "$snap" >/dev/null
  kill "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true; etcd_pid=
  rm -rf "$work/src"
fi
echo "snapshot: $snap ($(du -h "$snap" | cut -f1))"

# measure CMD... → prints "wall_s peak_rss_kb cpu_s" (cpu = user + system)
measure() {
  local out=$work/time.txt
  /usr/bin/time -v -o "$out" "$@" >/dev/null 2>"$work/cmd.err" || { cat "$work/cmd.err" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
  cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$out")
  echo "$wall $rss $cpu"
}
show() { set -- $1; echo "wall $1 s, cpu $3 s, peak RSS $(( $2 / 1024 )) MiB"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$work/etcdutl.txt"; : >"$work/km.txt"; : >"$work/km-k8s.txt"
for i in $(seq "$runs"); do
  rm -rf "$work/out"
  r=$(measure "$etcdutl" snapshot restore "$snap" --data-dir "$work/out"); echo "$r" >>"$work/etcdutl.txt"
  echo "run $i etcdutl 3.5.1:              $(show "$r")"
  rm -rf "$work/out"
  r=$(measure "$km" etcd snapshot restore "$snap" --data-dir "$work/out" --no-kubernetes-defaults); echo "$r" >>"$work/km.txt"
  echo "run $i kubemaint:                  $(show "$r")"
  rm -rf "$work/out"
  r=$(measure "$km" etcd snapshot restore "$snap" --data-dir "$work/out"); echo "$r" >>"$work/km-k8s.txt"
  echo "run $i kubemaint (k8s defaults):   $(show "$r")"
done
rm -rf "$work/out"
# Split kubemaint's peak RSS into anonymous memory (heap) and the file-backed map of the snapshot.
"$km" etcd snapshot restore "$snap" --data-dir "$work/out" --no-kubernetes-defaults >/dev/null &
pid=$!; max_anon=0; max_file=0
while kill -0 "$pid" 2>/dev/null; do
  read -r a f < <(awk '/RssAnon/ {a=$2} /RssFile/ {f=$2} END {print a+0, f+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
  [ "${a:-0}" -gt "$max_anon" ] && max_anon=$a; [ "${f:-0}" -gt "$max_file" ] && max_file=$f
  sleep 0.02
done
wait "$pid"
rm -rf "$work/out"
eu_w=$(cut -d' ' -f1 "$work/etcdutl.txt" | median); eu_r=$(cut -d' ' -f2 "$work/etcdutl.txt" | median)
km_w=$(cut -d' ' -f1 "$work/km.txt" | median); km_r=$(cut -d' ' -f2 "$work/km.txt" | median)
eu_c=$(cut -d' ' -f3 "$work/etcdutl.txt" | median); km_c=$(cut -d' ' -f3 "$work/km.txt" | median)
k8_w=$(cut -d' ' -f1 "$work/km-k8s.txt" | median)
echo "median wall: etcdutl ${eu_w} s, kubemaint ${km_w} s (with k8s defaults ${k8_w} s)"
echo "median cpu: etcdutl ${eu_c} s, kubemaint ${km_c} s; ratio $(echo "scale=2; $eu_c / $km_c" | bc)x"
echo "median peak RSS: etcdutl $((eu_r / 1024)) MiB, kubemaint $((km_r / 1024)) MiB"
echo "kubemaint peak RSS split: anonymous $((max_anon / 1024)) MiB, file-backed (mapped snapshot) $((max_file / 1024)) MiB"
echo "speed-up (etcdutl wall / kubemaint wall): $(echo "scale=2; $eu_w / $km_w" | bc)x"
echo "RSS ratio (etcdutl / kubemaint): $(echo "scale=2; $eu_r / $km_r" | bc)x"
