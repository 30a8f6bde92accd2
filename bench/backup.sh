#!/usr/bin/env bash
# Backup benchmark: `etcdctl snapshot save` (3.5.1) alone against `kubemaint backup run` to a real
# S3-compatible store (Garage 2.5.0 on loopback) with zstd and age, from the same real etcd 3.5.1
# serving TLS with client-certificate auth (as on a kubeadm node), filled with Kubernetes-like
# keys (/registry/<resource>/<ns>/<name>, 2-8 KiB base64 values).
#
#   bench/backup.sh [SIZE_MB]     (default 1200; e.g. 32 for a smoke run)
#
# RUNS=3 runs of each tool, alternating, warm page cache. Prints wall time and peak RSS
# (/usr/bin/time -v) per run, the medians, the ratio kubemaint/etcdctl (goal <= 1.3x: compression,
# encryption and upload overlap the stream), kubemaint's peak RSS (goal < 128 MiB) and the stored
# (compressed + encrypted) size. etcdctl writes a plain file to local disk; kubemaint streams
# through its SHA-256 check, zstd (level 3, libzstd threads) and age (x25519 recipient) into Garage.
# Needs `kubemaint-lab prepare` and scripts/build-garage.sh. Everything is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1200}
runs=${RUNS:-3}
garage=${KUBEMAINT_GARAGE_BIN:-${KUBEMAINT_GARAGE_CACHE:-$HOME/.cache/kubemaint-garage}/2.5.0/bin/garage}
[ -x "$garage" ] || { echo "missing $garage: run scripts/build-garage.sh" >&2; exit 2; }
. bench/lib.sh
bench_init backup
start_etcd "${KEEP_DIR:-$work/etcd}"

# Garage: one node, layout applied, one bucket, one key (as crates/lab/src/garage.rs does).
gdir=$work/garage
mkdir -p "$gdir"
rpc=$(free_port); s3=$(free_port); admin=$(free_port)
cat >"$gdir/garage.toml" <<TOML
metadata_dir = "$gdir/meta"
data_dir = "$gdir/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "bench-admin-token"
TOML
g() { "$garage" -c "$gdir/garage.toml" "$@"; }
"$garage" -c "$gdir/garage.toml" server >"$gdir/garage.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do g status >/dev/null 2>&1 && break; sleep 0.2; done
g status >/dev/null || { echo "garage did not start:"; tail "$gdir/garage.log"; exit 1; }
node=$(g node id -q | cut -d@ -f1)
g layout assign -z dc1 -c 100G "$node" >/dev/null
g layout apply --version 1 >/dev/null
g bucket create bench >/dev/null
key=$(g key create bench)
export AWS_ACCESS_KEY_ID=$(sed -n 's/^Key ID:[[:space:]]*//p' <<<"$key")
export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^Secret key:[[:space:]]*//p' <<<"$key")
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3 AWS_REGION=garage
g bucket allow --read --write --owner bench --key "$AWS_ACCESS_KEY_ID" >/dev/null

fill_etcd "$size_mb"

# An age x25519 recipient from age-keygen (Debian package `age`) if present, else a passphrase
# (scrypt costs once per file; the stream cipher per byte is the same ChaCha20-Poly1305).
if command -v age-keygen >/dev/null; then
  age-keygen -o "$work/key.txt" 2>/dev/null
  enc=(--recipient "$(sed -n 's/^# public key: //p' "$work/key.txt")")
  enc_what="age x25519 recipient"
else
  printf 'bench passphrase\n' >"$work/pass"
  enc=(--passphrase-file "$work/pass")
  enc_what="age scrypt passphrase (age-keygen not installed)"
fi

echo "load before the runs: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
declare -a ew er kw kr
for i in $(seq "$runs"); do
  rm -f "$work/etcdctl.db"
  read -r w r < <(measure etcdctl env ETCDCTL_API=3 "$etcdctl" --endpoints "$url" "${tls[@]}" snapshot save "$work/etcdctl.db")
  ew+=("$w"); er+=("$r")
  printf 'run %d  etcdctl snapshot save          %7.2f s  %7d KiB peak RSS\n' "$i" "$w" "$r"
  read -r w r < <(measure kubemaint "$km" backup run --to s3://bench/etcd --endpoints "$url" --pki-dir "$pki" \
    "${enc[@]}" --keep-last 1 -o json)
  kw+=("$w"); kr+=("$r")
  printf 'run %d  kubemaint backup run (Garage) %7.2f s  %7d KiB peak RSS\n' "$i" "$w" "$r"
done
echo "load after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
snap=$(stat -c %s "$work/etcdctl.db")
stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup"]["stored_size"])' "$work/kubemaint.out")
file=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup"]["file_size"])' "$work/kubemaint.out")
echo "encryption: $enc_what; zstd level 3"
python3 - "${ew[*]}" "${er[*]}" "${kw[*]}" "${kr[*]}" "$snap" "$file" "$stored" <<'PY'
import statistics, sys
ew, er, kw, kr = ([float(x) for x in a.split()] for a in sys.argv[1:5])
snap, file, stored = (int(x) for x in sys.argv[5:8])
mew, mer, mkw, mkr = (statistics.median(v) for v in (ew, er, kw, kr))
print(f"snapshot {snap / 2**20:.1f} MiB (kubemaint's last: {file / 2**20:.1f} MiB), medians of {len(ew)} runs")
print(f"  etcdctl snapshot save   {mew:7.2f} s  {snap / 2**20 / mew:7.1f} MiB/s  peak RSS {mer / 1024:6.1f} MiB")
print(f"  kubemaint backup run    {mkw:7.2f} s  {file / 2**20 / mkw:7.1f} MiB/s  peak RSS {mkr / 1024:6.1f} MiB")
print(f"  stored (zstd + age) {stored / 2**20:.1f} MiB = {stored * 100 / file:.1f}% of the snapshot")
print(f"  ratio kubemaint/etcdctl: wall {mkw / mew:.2f}x (goal <= 1.3x: {'yes' if mkw <= 1.3 * mew else 'NO'}), "
      f"peak RSS {mkr / 1024:.1f} MiB (goal < 128 MiB: {'yes' if mkr < 128 * 1024 else 'NO'})")
PY
