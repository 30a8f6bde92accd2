#!/usr/bin/env bash
# Builds the Garage S3-compatible object store (crates.io `garage`) once and caches it, keyed by version,
# in ~/.cache/kubemaint-garage/<version>/bin/garage. The backup tests start it on loopback as the real
# S3 store (a long compile the first time; later runs return at once). Idempotent; safe to run concurrently
# (a lock serialises builders).
set -euo pipefail
version="${GARAGE_VERSION:-2.5.0}"
cache="${KUBEMAINT_GARAGE_CACHE:-$HOME/.cache/kubemaint-garage}"
root="$cache/$version"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -x "$root/bin/garage" ] && "$root/bin/garage" --version >/dev/null 2>&1; then
  echo "garage $version: $root/bin/garage"
  exit 0
fi
echo "building garage $version into $root (once; this takes a while)"
# --locked: the crate's own Cargo.lock, so a fresh machine builds what was tested here.
nice -n 10 cargo install --locked --root "$root.part" --version "=$version" garage
rm -rf "$root"
mv "$root.part" "$root"
"$root/bin/garage" --version
echo "garage $version: $root/bin/garage"
