#!/usr/bin/env bash
# Compare `kubemaint etcd snapshot status` with `etcdutl snapshot status` (3.5.1) on a big snapshot:
# wall time, CPU time (user + sys) and peak RSS, warm page cache in two states (see `compare`),
# median of RUNS alternating runs; prints the ratios and checks that both report the same hash / revision / totalKey / totalSize. On a shared,
# loaded machine wall time mostly measures the wait for a core, so read the CPU ratio beside it
# (and note `uptime`, which the script prints).
#
# Usage: bench/etcd-status.sh [SIZE_MB]          generate ~SIZE_MB of Kubernetes-like data (default 1024)
#        SNAPSHOT=/path/to/snap.db bench/etcd-status.sh   use an existing snapshot instead
# Env:   RUNS (default 7), KUBEMAINT (binary; default: cargo build --release), WORK (scratch dir),
#        KUBEMAINT_LAB_CACHE (etcd binaries; run `kubemaint-lab prepare` first).
set -euo pipefail

SIZE_MB=${1:-1024}
RUNS=${RUNS:-7}
CACHE=${KUBEMAINT_LAB_CACHE:-$HOME/.cache/kubemaint-lab}
E35=$CACHE/etcd-v3.5.1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for b in etcd etcdctl etcdutl; do
  [[ -x $E35/$b ]] || { echo "missing $E35/$b: run \`kubemaint-lab prepare\` first" >&2; exit 2; }
done
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

if [[ -z ${KUBEMAINT:-} ]]; then
  (cd "$ROOT" && cargo build --release -q -p kubemaint)
  KUBEMAINT=${CARGO_TARGET_DIR:-$ROOT/target}/release/kubemaint
fi
WORK=${WORK:-$(mktemp -d /tmp/kubemaint-bench-status.XXXXXX)}
mkdir -p "$WORK"
echo "work dir: $WORK"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [[ -z ${SNAPSHOT:-} ]]; then
  SNAPSHOT=$WORK/snap-${SIZE_MB}MB.db
  if [[ ! -f $SNAPSHOT ]]; then
    CP=$(free_port); PP=$(free_port)
    EP=127.0.0.1:$CP
    "$E35/etcd" --data-dir "$WORK/data" --quota-backend-bytes $((16 * 1024 * 1024 * 1024)) \
      --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
      --listen-peer-urls "http://127.0.0.1:$PP" --initial-advertise-peer-urls "http://127.0.0.1:$PP" \
      --initial-cluster "default=http://127.0.0.1:$PP" >"$WORK/etcd.log" 2>&1 &
    ETCD_PID=$!
    trap 'kill $ETCD_PID 2>/dev/null || true' EXIT
    for _ in $(seq 100); do "$E35/etcdctl" --endpoints "$EP" endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
    echo "writing ~${SIZE_MB} MB of Kubernetes-like objects into etcd 3.5.1 ..."
    # 128-op transactions of objects sized like real ones (pods 3-8 KiB, configmaps 1-20 KiB,
    # events ~1 KiB, leases ~300 B), under 1.5 MiB per request.
    python3 - "$SIZE_MB" <<'PY' | while IFS= read -r -d '' batch; do
import random, string, sys
target = int(sys.argv[1]) * 1024 * 1024
random.seed(42)
alphabet = (string.ascii_letters + string.digits).encode()
pool = bytes(random.choice(alphabet) for _ in range(1 << 16))
kinds = [("pods", 3000, 8000, 5), ("configmaps", 1000, 20000, 2), ("events", 600, 1400, 4),
         ("leases", 200, 400, 1), ("secrets", 500, 4000, 1), ("deployments", 2000, 6000, 1)]
total, n = 0, 0
while total < target:
    ops, size = [], 0
    while len(ops) < 128 and size < 1_000_000:
        kind, lo, hi, _ = random.choices(kinds, weights=[k[3] for k in kinds])[0]
        vlen = random.randint(lo, hi)
        off = random.randint(0, len(pool) - vlen)
        key = f"/registry/{kind}/ns-{n % 50}/{kind[:-1]}-{n}"
        ops.append(f"put {key} {pool[off:off + vlen].decode()}")
        size += vlen + len(key)
        n += 1
    total += size
    sys.stdout.write("\n" + "\n".join(ops) + "\n\n\n\0")
PY
      printf '%s' "$batch" | "$E35/etcdctl" --endpoints "$EP" txn >/dev/null
    done
    "$E35/etcdctl" --endpoints "$EP" snapshot save "$SNAPSHOT" >/dev/null
    kill $ETCD_PID; wait $ETCD_PID 2>/dev/null || true
    trap - EXIT
  fi
fi
echo "snapshot: $SNAPSHOT ($(du -h "$SNAPSHOT" | cut -f1))"

# Both tools run alternately (so that load changes hit both alike) RUNS times after one warm-up
# run each; wall time is taken with a monotonic clock to the millisecond (/usr/bin/time rounds to
# 10 ms, a tenth of our figure), CPU time and peak RSS from wait4. Medians are reported.
#
# How the file sits in the page cache matters as much as the code: a file written in 4 KiB pieces
# (as `etcdctl snapshot save` leaves it) is cached in 4 KiB folios, and mapping it costs a fault
# per 16 pages and a page-table entry per page for both tools; a file read back from disk (a
# backup looked at later) sits in large folios and maps far more cheaply. Both are measured.
compare() { # FILE LABEL
  echo
  echo "== $2"
  echo "load before: $(uptime)"
  read -r ku_t ku_rss ku_cpu eu_t eu_rss eu_cpu < <(python3 - "$RUNS" "$KUBEMAINT" "$E35/etcdutl" "$1" <<'PY'
import os, statistics, subprocess, sys, time
runs, ours, etcdutl, snap = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
cmds = [[ours, "etcd", "snapshot", "status", "-o", "json", snap],
        [etcdutl, "snapshot", "status", "-w", "json", snap]]
def run(cmd):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        sys.exit(f"{cmd[0]} failed ({status})")
    return wall, ru.ru_maxrss, ru.ru_utime + ru.ru_stime
for c in cmds:
    run(c)  # warm the page cache
res = [[], []]
for _ in range(runs):
    for i, c in enumerate(cmds):
        res[i].append(run(c))
out = []
for r in res:
    for j in range(3):
        out.append(statistics.median_low(x[j] for x in r))
    print(f"  runs: " + " ".join(f"{x[0]:.3f}" for x in r), file=sys.stderr)
print(" ".join(f"{x:.3f}" if isinstance(x, float) else str(int(x)) for x in out))
PY
  )
  echo "load after:  $(uptime)"
  printf '%-34s %10s %10s %14s\n' "snapshot status" "wall (s)" "cpu (s)" "peak RSS (MiB)"
  printf '%-34s %10s %10s %14d\n' "etcdutl 3.5.1" "$eu_t" "$eu_cpu" $((eu_rss / 1024))
  printf '%-34s %10s %10s %14d\n' "kubemaint" "$ku_t" "$ku_cpu" $((ku_rss / 1024))
  python3 -c "import sys; e,k=float(sys.argv[1]),float(sys.argv[2]); print(f'speed-up (etcdutl / kubemaint): {e/max(k,0.001):.2f}x wall')" "$eu_t" "$ku_t"
  python3 -c "import sys; e,k=float(sys.argv[1]),float(sys.argv[2]); print(f'CPU ratio (etcdutl / kubemaint): {e/max(k,0.001):.1f}x')" "$eu_cpu" "$ku_cpu"
}

WRITTEN=$WORK/written-4k.db
trap 'rm -f "$WRITTEN"' EXIT
dd if="$SNAPSHOT" of="$WRITTEN" bs=4k status=none
sync "$WRITTEN"
compare "$WRITTEN" "page cache as a 4 KiB writer leaves it (a snapshot just taken by etcdctl)"
rm -f "$WRITTEN"
python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$SNAPSHOT"
cat "$SNAPSHOT" >/dev/null
compare "$SNAPSHOT" "page cache after reading the file back from disk (a backup looked at later)"
echo

ours=$("$KUBEMAINT" etcd snapshot status -o json "$SNAPSHOT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["hash"], d["revision"], d["totalKey"], d["totalSize"])')
theirs=$("$E35/etcdutl" snapshot status -w json "$SNAPSHOT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["hash"], d["revision"], d["totalKey"], d["totalSize"])')

echo "etcdutl   (hash revision totalKey totalSize): $theirs"
echo "kubemaint (hash revision totalKey totalSize): $ours"
if [[ $ours == "$theirs" ]]; then echo "figures: identical"; else echo "figures: DIFFERENT" >&2; exit 1; fi
