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
cache=${KUBEMAINT_LAB_CACHE:-$HOME/.cache/kubemaint-lab}
etcd=$cache/etcd-v3.5.1/etcd
etcdctl=$cache/etcd-v3.5.1/etcdctl
garage=${KUBEMAINT_GARAGE_BIN:-${KUBEMAINT_GARAGE_CACHE:-$HOME/.cache/kubemaint-garage}/2.5.0/bin/garage}
for b in "$etcd" "$etcdctl" "$garage" /usr/bin/time /usr/bin/openssl; do
  [ -x "$b" ] || { echo "missing $b: run kubemaint-lab prepare and scripts/build-garage.sh (and apt-get install time openssl)" >&2; exit 2; }
done
if [ -z "${KUBEMAINT_BIN:-}" ]; then
  cargo build --release -p kubemaint -q
  km=${CARGO_TARGET_DIR:-target}/release/kubemaint
else
  km=$KUBEMAINT_BIN
fi

work=$(mktemp -d /tmp/kubemaint-bench-backup.XXXXXX)
data=${KEEP_DIR:-$work/etcd}
etcd_pid=
garage_pid=
cleanup() {
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null
  [ -n "$garage_pid" ] && kill "$garage_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A kubeadm-shaped PKI: pki/etcd/{ca,server,healthcheck-client}.{crt,key} (EC P-256).
pki=$work/pki
mkdir -p "$pki/etcd"
gen() { # name cn ext
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/etcd/$1.key" 2>/dev/null
  openssl req -new -key "$pki/etcd/$1.key" -subj "/CN=$2" -out "$work/$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$pki/etcd/ca.crt" -CAkey "$pki/etcd/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/$1.ext" -out "$pki/etcd/$1.crt" 2>/dev/null
}
openssl ecparam -name prime256v1 -genkey -noout -out "$pki/etcd/ca.key" 2>/dev/null
openssl req -x509 -new -key "$pki/etcd/ca.key" -subj "/CN=etcd-ca" -days 2 -out "$pki/etcd/ca.crt" 2>/dev/null
gen server bench-etcd "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
gen healthcheck-client kube-etcd-healthcheck-client "extendedKeyUsage=clientAuth"

cport=$(free_port); pport=$(free_port)
url=https://127.0.0.1:$cport
"$etcd" --name bench --data-dir "$data" --listen-client-urls "$url" --advertise-client-urls "$url" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "bench=http://127.0.0.1:$pport" --client-cert-auth \
  --trusted-ca-file "$pki/etcd/ca.crt" --cert-file "$pki/etcd/server.crt" --key-file "$pki/etcd/server.key" \
  --quota-backend-bytes $((16 * 1024 * 1024 * 1024)) --snapshot-count 100000 >"$work/etcd.log" 2>&1 &
etcd_pid=$!
tls=(--cacert "$pki/etcd/ca.crt" --cert "$pki/etcd/healthcheck-client.crt" --key "$pki/etcd/healthcheck-client.key")
ctl() { ETCDCTL_API=3 "$etcdctl" --endpoints "$url" "${tls[@]}" "$@"; }
for _ in $(seq 100); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
ctl endpoint health >/dev/null || { echo "etcd did not start:"; tail "$work/etcd.log"; exit 1; }

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
garage_pid=$!
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

have=$(ctl endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])')
if [ "$have" -lt $((size_mb * 1024 * 1024 * 9 / 10)) ]; then
  echo "filling etcd to ~${size_mb} MiB through etcdctl txn (100 puts each, 4 in parallel)..."
  start=$(date +%s)
  python3 - "$size_mb" "$etcdctl" "$url" "$pki" <<'PY'
import os, random, subprocess, sys, base64
from concurrent.futures import ThreadPoolExecutor
target, etcdctl, url, pki = int(sys.argv[1]) * 1024 * 1024, sys.argv[2], sys.argv[3], sys.argv[4]
rnd = random.Random(1)
kinds = ["pods", "configmaps", "secrets", "events", "leases", "replicasets", "endpointslices", "services/specs"]
def script(batch):
    lines, size = ["", ], 0
    for i in range(100):
        kind = kinds[(batch * 100 + i) % len(kinds)]
        ns = "ns-%d" % (rnd.randrange(40))
        n = rnd.randrange(2048, 8193)
        value = base64.b64encode(rnd.randbytes(n * 3 // 4)).decode()[:n]
        lines.append("put /registry/%s/%s/obj-%d-%d %s" % (kind, ns, batch, i, value))
        size += n + 60
    lines += ["", "", ""]
    return "\n".join(lines), size
def run(s):
    env = dict(os.environ, ETCDCTL_API="3")
    subprocess.run([etcdctl, "--endpoints", url, "--cacert", pki + "/etcd/ca.crt",
                    "--cert", pki + "/etcd/healthcheck-client.crt", "--key", pki + "/etcd/healthcheck-client.key",
                    "txn"], input=s.encode(), stdout=subprocess.DEVNULL, check=True, env=env)
written, batch = 0, 0
with ThreadPoolExecutor(4) as pool:
    futs = []
    while written < target:
        s, n = script(batch)
        futs.append(pool.submit(run, s))
        written += n
        batch += 1
        if len(futs) >= 16:
            for f in futs: f.result()
            futs = []
    for f in futs: f.result()
PY
  echo "filled in $(( $(date +%s) - start )) s"
fi
ctl endpoint status -w table

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

measure() { # label cmd...
  local label=$1; shift
  sync
  /usr/bin/time -v "$@" >"$work/$label.out" 2>"$work/$label.time" || { cat "$work/$label.out" "$work/$label.time"; exit 1; }
  local wall rss
  wall=$(python3 - "$work/$label.time" <<'PY'
import sys, re
t = open(sys.argv[1]).read()
m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", t)
print(int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3)))
PY
)
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/$label.time")
  echo "$wall $rss"
}

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
