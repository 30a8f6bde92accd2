#!/usr/bin/env bash
# Save benchmark: `etcdctl snapshot save` (3.5.1) vs `kubemaint etcd snapshot save`, from the same
# real etcd 3.5.1 serving TLS with client-certificate auth (as on a kubeadm node), filled with
# Kubernetes-like keys (/registry/<resource>/<ns>/<name>) and 2-8 KiB values.
#
#   bench/etcd-save.sh [SIZE_MB]     (default 1024; e.g. 32 for a smoke run)
#
# RUNS=3 runs of each tool, alternating, warm page cache. Prints wall time and peak RSS
# (/usr/bin/time -v) per run, the medians, and the ratios etcdctl/kubemaint (> 1: kubemaint is
# faster / smaller). kubemaint also recomputes and checks the SHA-256 and reads the revision back
# from the file; etcdctl does neither.
# KEEP_DIR=path keeps the etcd data dir (and reuses it if it is already filled) between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
runs=${RUNS:-3}
. bench/lib.sh
bench_init save
start_etcd "${KEEP_DIR:-$work/etcd}"
fill_etcd "$size_mb"

declare -a ew er kw kr
for i in $(seq "$runs"); do
  rm -f "$work/etcdctl.db"
  read -r w r < <(measure etcdctl env ETCDCTL_API=3 "$etcdctl" --endpoints "$url" "${tls[@]}" snapshot save "$work/etcdctl.db")
  ew+=("$w"); er+=("$r")
  printf 'run %d  etcdctl   snapshot save  %7.2f s  %7d KiB peak RSS\n' "$i" "$w" "$r"
  rm -f "$work/kubemaint.db" "$work/kubemaint.db.part" "$work/kubemaint.db.manifest.json"
  read -r w r < <(measure kubemaint "$km" etcd snapshot save "$work/kubemaint.db" --endpoints "$url" --pki-dir "$pki" --no-progress)
  kw+=("$w"); kr+=("$r")
  printf 'run %d  kubemaint snapshot save  %7.2f s  %7d KiB peak RSS\n' "$i" "$w" "$r"
done
ls -l "$work/etcdctl.db" "$work/kubemaint.db"
cmp -s "$work/etcdctl.db" "$work/kubemaint.db" && echo "the two snapshots are byte-identical" \
  || echo "the two snapshots differ (the database changed between the saves?)"

python3 - "${ew[*]}" "${er[*]}" "${kw[*]}" "${kr[*]}" "$(stat -c %s "$work/kubemaint.db")" <<'PY'
import statistics, sys
ew, er, kw, kr = ([float(x) for x in a.split()] for a in sys.argv[1:5])
size = int(sys.argv[5])
mew, mer, mkw, mkr = (statistics.median(v) for v in (ew, er, kw, kr))
print(f"snapshot size {size / 2**20:.1f} MiB, medians of {len(ew)} runs")
print(f"  etcdctl    {mew:7.2f} s  {size / 2**20 / mew:7.1f} MiB/s  peak RSS {mer / 1024:6.1f} MiB")
print(f"  kubemaint  {mkw:7.2f} s  {size / 2**20 / mkw:7.1f} MiB/s  peak RSS {mkr / 1024:6.1f} MiB")
print(f"  ratio etcdctl/kubemaint: wall {mew / mkw:.2f}x, peak RSS {mer / mkr:.2f}x")
print(f"  goals: at least as fast as etcdctl: {'yes' if mkw <= mew * 1.02 else 'NO'}; "
      f"peak RSS < 64 MiB: {'yes' if mkr < 64 * 1024 else 'NO'}")
PY
