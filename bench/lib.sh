# Shared by the etcd benchmarks that run against a live etcd (bench/etcd-save.sh, bench/backup.sh):
# sourced, not run. It provides
#   bench_init NAME [BIN...]  checks the real etcd 3.5.1 (and BIN...) exist, builds kubemaint (or
#                             takes $KUBEMAINT_BIN), makes $work and removes it (and every pid in
#                             $pids) on exit; sets $etcd $etcdctl $km $work $pids
#   free_port                 a free loopback TCP port
#   start_etcd DATA_DIR       a real etcd 3.5.1 serving TLS with client-certificate auth on a
#                             kubeadm-shaped PKI ($pki/etcd/{ca,server,healthcheck-client}); sets
#                             $pki $url $tls and the function ctl (etcdctl with those flags)
#   fill_etcd SIZE_MB         Kubernetes-like keys (/registry/<resource>/<ns>/<name>, 2-8 KiB
#                             base64 values) through etcdctl txn until the database is ~SIZE_MB
#   measure LABEL CMD...      runs CMD under /usr/bin/time -v; prints "wall_s peak_rss_kb"
# The caller sets `set -euo pipefail` and cds to the repository root first.

bench_init() { # name extra-binaries...
  local name=$1 b
  shift
  local cache=${KUBEMAINT_LAB_CACHE:-$HOME/.cache/kubemaint-lab}
  etcd=$cache/etcd-v3.5.1/etcd
  etcdctl=$cache/etcd-v3.5.1/etcdctl
  for b in "$etcd" "$etcdctl" "$@" /usr/bin/time /usr/bin/openssl; do
    [ -x "$b" ] || { echo "missing $b: run kubemaint-lab prepare (and apt-get install time openssl)" >&2; exit 2; }
  done
  if [ -z "${KUBEMAINT_BIN:-}" ]; then
    cargo build --release -p kubemaint -q
    km=${CARGO_TARGET_DIR:-target}/release/kubemaint
  else
    km=$KUBEMAINT_BIN
  fi
  work=$(mktemp -d "/tmp/kubemaint-bench-$name.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A kubeadm-shaped PKI: $pki/etcd/{ca,server,healthcheck-client}.{crt,key} (EC P-256).
make_pki() {
  pki=$work/pki
  mkdir -p "$pki/etcd"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/etcd/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/etcd/ca.key" -subj "/CN=etcd-ca" -days 2 -out "$pki/etcd/ca.crt" 2>/dev/null
  pki_cert server bench-etcd "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
  pki_cert healthcheck-client kube-etcd-healthcheck-client "extendedKeyUsage=clientAuth"
}

pki_cert() { # name cn ext
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/etcd/$1.key" 2>/dev/null
  openssl req -new -key "$pki/etcd/$1.key" -subj "/CN=$2" -out "$work/$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$pki/etcd/ca.crt" -CAkey "$pki/etcd/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/$1.ext" -out "$pki/etcd/$1.crt" 2>/dev/null
}

start_etcd() { # data-dir
  make_pki
  local cport pport
  cport=$(free_port); pport=$(free_port)
  url=https://127.0.0.1:$cport
  "$etcd" --name bench --data-dir "$1" --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "bench=http://127.0.0.1:$pport" --client-cert-auth \
    --trusted-ca-file "$pki/etcd/ca.crt" --cert-file "$pki/etcd/server.crt" --key-file "$pki/etcd/server.key" \
    --quota-backend-bytes $((16 * 1024 * 1024 * 1024)) --snapshot-count 100000 >"$work/etcd.log" 2>&1 &
  pids+=($!)
  tls=(--cacert "$pki/etcd/ca.crt" --cert "$pki/etcd/healthcheck-client.crt" --key "$pki/etcd/healthcheck-client.key")
  for _ in $(seq 100); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
  ctl endpoint health >/dev/null || { echo "etcd did not start:"; tail "$work/etcd.log"; exit 1; }
}

ctl() { ETCDCTL_API=3 "$etcdctl" --endpoints "$url" "${tls[@]}" "$@"; }

fill_etcd() { # size-mb
  local size_mb=$1 have start
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
}

measure() { # label cmd...
  local label=$1 wall rss
  shift
  sync
  /usr/bin/time -v "$@" >"$work/$label.out" 2>"$work/$label.time" || { cat "$work/$label.out" "$work/$label.time"; exit 1; }
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
