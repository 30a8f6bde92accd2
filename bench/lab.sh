#!/usr/bin/env bash
# Lab timings: cold `prepare` (only with COLD=1: rebuilds everything in a throwaway cache,
# ~5-8 min), warm `prepare`, warm `up` (3 workers) and `down`, each run RUNS times.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p kubemaint-lab --locked -q
lab=target/release/kubemaint-lab
runs=${RUNS:-3}
dir=$(mktemp -d /tmp/kubemaint-bench-lab.XXXXXX)
trap '$lab down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
if [ "${COLD:-0}" = 1 ]; then
  cold=$(mktemp -d /tmp/kubemaint-cold-cache.XXXXXX)
  t=$(now); KUBEMAINT_LAB_CACHE=$cold $lab prepare >/dev/null; echo "cold prepare: $(elapsed "$t") s"
  rm -rf "$cold"
fi
t=$(now); $lab prepare >/dev/null 2>&1; echo "warm prepare: $(elapsed "$t") s"
for i in $(seq "$runs"); do
  t=$(now); $lab up --dir "$dir" --workers 3 >/dev/null; up=$(elapsed "$t")
  t=$(now); $lab down --dir "$dir" >/dev/null; down=$(elapsed "$t")
  echo "run $i: warm up ${up} s, down ${down} s"
done
