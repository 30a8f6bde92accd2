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
cache=${KUBEMAINT_LAB_CACHE:-$HOME/.cache/kubemaint-lab}
etcd=$cache/etcd-v3.5.1/etcd
etcdctl=$cache/etcd-v3.5.1/etcdctl
for b in "$etcd" "$etcdctl" /usr/bin/time /usr/bin/openssl; do
  [ -x "$b" ] || { echo "missing $b: run kubemaint-lab prepare (and apt-get install time openssl)" >&2; exit 2; }
done
if [ -z "${KUBEMAINT_BIN:-}" ]; then
  cargo build --release -p kubemaint -q
  km=${CARGO_TARGET_DIR:-target}/release/kubemaint
else
  km=$KUBEMAINT_BIN
fi

work=$(mktemp -d /tmp/kubemaint-bench-save.XXXXXX)
data=${KEEP_DIR:-$work/etcd}
etcd_pid=
cleanup() { [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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

measure() { # label outfile cmd...
  local label=$1 out=$2; shift 2
  rm -f "$out" "$out.part" "$out.manifest.json"
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

declare -a ew er kw kr
for i in $(seq "$runs"); do
  read -r w r < <(measure etcdctl "$work/etcdctl.db" env ETCDCTL_API=3 "$etcdctl" --endpoints "$url" "${tls[@]}" snapshot save "$work/etcdctl.db")
  ew+=("$w"); er+=("$r")
  printf 'run %d  etcdctl   snapshot save  %7.2f s  %7d KiB peak RSS\n' "$i" "$w" "$r"
  read -r w r < <(measure kubemaint "$work/kubemaint.db" "$km" etcd snapshot save "$work/kubemaint.db" --endpoints "$url" --pki-dir "$pki" --no-progress)
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
