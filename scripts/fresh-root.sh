#!/usr/bin/env bash
# CI's fresh-machine check: README's install steps, run on a clean Debian bookworm instead of this
# (long-lived, hand-fixed) machine.
#
# In a bare root made by `debootstrap --variant=minbase bookworm` (Essential packages and apt, nothing
# else; cached as a tarball), with a fresh clone of the repository at a commit, it runs
#   scripts/install-deps.sh, cargo build --workspace --locked, target/debug/kubemaint-lab prepare
# Only these come from this machine: the Rust toolchain (~/.rustup, ~/.cargo/bin, read-only; crates are
# downloaded by cargo into the root, nothing of this machine's cargo registry or target dir is used)
# and the image's kubectl (/usr/lib/google-cloud-sdk, read-only). Two caches are shared, neither able to
# hide a missing package: downloaded .debs (apt still has to be told to install each one, and checks
# them against the root's own package lists) and the Go build cache of the lab's kubernetes build
# (content-keyed; `go` itself must be installed in the root). The lab's binary cache is the root's own:
# kube-apiserver & co. are built from Debian's source inside the root every run.
#
#   scripts/fresh-root.sh [--ref REF]     default REF: HEAD (committed state only)
#
# Environment: FRESH_ROOT_REF (as --ref), FRESH_ROOT_CACHE (default ~/.cache/kubemaint-fresh-root),
# FRESH_ROOT_ON_DISK=1 puts the root in FRESH_ROOT_WORK (default /var/tmp/kubemaint-fresh-root) instead
# of memory, and then FRESH_ROOT_KEEP=1 keeps it for inspection, FRESH_ROOT_NICE (default 10), FRESH_ROOT_MIRROR (default: the Debian mirror this machine's
# apt uses, else debootstrap's default).
#
# The root (a tmpfs) and every mount exist only in a private mount namespace whose processes all die
# with this script (unshare --pid --kill-child under a parent-death signal): no exit path leaves a mount
# or a root behind on the host.
# The whole script is one block, read before it runs: editing the file meanwhile cannot change a run.
{
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ref=${FRESH_ROOT_REF:-HEAD}
while [ $# -gt 0 ]; do
  case "$1" in
    --ref) ref=${2:?--ref needs a commit}; shift 2 ;;
    --ref=*) ref=${1#--ref=}; shift ;;
    *) echo "usage: $0 [--ref REF]" >&2; exit 2 ;;
  esac
done
home=${HOME:-/root}
cache=${FRESH_ROOT_CACHE:-$home/.cache/kubemaint-fresh-root}
work_base=${FRESH_ROOT_WORK:-/var/tmp/kubemaint-fresh-root}
mirror=${FRESH_ROOT_MIRROR:-$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
nice_n=${FRESH_ROOT_NICE:-10}
suite=bookworm
variant=minbase
start=$SECONDS
say() { printf '\033[1m[fresh-root %s]\033[0m %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { say "FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mounts)"
for tool in unshare setpriv chroot findmnt flock zstd git; do
  type -P "$tool" >/dev/null || die "$tool is missing on this machine (util-linux, coreutils, zstd, git)"
done
if ! type -P debootstrap >/dev/null; then
  say "installing debootstrap on this machine (builds the fresh root)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap </dev/null
fi
rev=$(git -C "$repo" rev-parse --verify "$ref^{commit}") || die "no commit $ref in $repo"

# Runs "$@" in a private mount namespace and PID namespace that die with this script.
isolated() { setpriv --pdeathsig KILL -- unshare --mount --propagation private --pid --fork --kill-child -- "$@"; }

# Phase timings, printed at every exit.
phases=()
phase_start=$SECONDS
phase() { phases+=("$(printf '%-34s %5d s' "$1" $((SECONDS - phase_start)))"); phase_start=$SECONDS; }
mkdir -p "$cache" "$work_base"

# --- 1. the bare root, cached as a tarball (rebuilt weekly and when debootstrap or the mirror changes)
key=$(printf '%s\n' "$suite" "$variant" "$mirror" "$(debootstrap --version)" "$(date -u +%G-W%V)" | sha256sum | cut -c1-12)
tarball="$cache/$suite-$variant-$(date -u +%G-W%V)-$key.tar.zst"
{
  flock 9
  if [ ! -f "$tarball" ]; then
    say "debootstrap --variant=$variant $suite ${mirror:-"(the default mirror of debootstrap)"} (cached as $tarball)"
    build=$(mktemp -d "$cache/.build.XXXXXX")
    # debootstrap mounts /proc and /sys in its target: keep those in a namespace of their own too.
    if ! isolated debootstrap --variant="$variant" "$suite" "$build/root" ${mirror:+"$mirror"} >"$build/debootstrap.log" 2>&1; then
      tail -n 30 "$build/debootstrap.log" >&2
      rm -rf --one-file-system "$build"
      die "debootstrap failed (log above)"
    fi
    tar -C "$build/root" --numeric-owner -cpf - . | zstd -q -T0 -3 -o "$tarball.part"
    mv "$tarball.part" "$tarball"
    rm -rf --one-file-system "$build"
    find "$cache" -maxdepth 1 -name "$suite-$variant-*.tar.zst" ! -path "$tarball" -delete
    phase "debootstrap (cache miss)"
  else
    phase "debootstrap (cached)"
  fi
} 9>"$cache/.root.lock"

# --- 2. this run's root: a fresh copy of the tarball, removed at exit
# Leftovers of killed runs (no one holds their lock) are removed first; mounts never outlive a run.
for old in "$work_base"/run.*; do
  [ -d "$old" ] || continue
  if flock -n "$old" true 2>/dev/null && [ -z "$(find "$old" -maxdepth 0 -mmin -1)" ]; then
    if grep -qF "$old/" <<<"$(findmnt -rn -o TARGET)"; then say "leaving $old: something is mounted under it"; continue; fi
    rm -rf --one-file-system "$old"
  fi
done
# The root lives in memory (a tmpfs in the run's mount namespace: it vanishes with the namespace, nothing
# to delete, and the shared disk stays out of it); a run peaks at about 7 GB (packages 1, cargo target
# 2.5, kubernetes source and build 2.5, Go's temp 1). FRESH_ROOT_ON_DISK=1 puts it in FRESH_ROOT_WORK.
if [ -z "${FRESH_ROOT_ON_DISK:-}" ]; then
  avail_gb=$(awk '/^MemAvailable:/ { print int($2 / 1048576) }' /proc/meminfo)
  [ "$avail_gb" -ge 9 ] || die "only $avail_gb GB of memory available; the root in memory needs 9 (or FRESH_ROOT_ON_DISK=1)"
else
  free_gb=$(df --output=avail -BG "$work_base" | tail -n1 | tr -dc 0-9)
  [ "$free_gb" -ge 8 ] || die "only $free_gb GB free in $work_base; a fresh root on disk needs 8 GB"
fi
run=$(mktemp -d "$work_base/run.XXXXXX")
exec 8<"$run"
flock 8
root=$run/root state=$run/state
mkdir "$root" "$state"
child=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then kill -KILL "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  # Nothing should be mounted here on the host (mounts lived in the namespace); check before deleting.
  if [ -f "$state/times" ]; then
    local name secs code
    while IFS='|' read -r name secs code; do
      phases+=("$(printf '%-34s %5d s%s' "$name" "$secs" "$([ "$code" = 0 ] || echo "  FAILED (exit $code)")")")
    done <"$state/times"
  fi
  local left
  left=$(findmnt -rn -o TARGET | grep -F "$run/" | sort -r || true)
  if [ -n "$left" ]; then
    say "unmounting leftovers: $left" >&2
    while read -r m; do umount -l "$m" || true; done <<<"$left"
  fi
  if [ -n "${FRESH_ROOT_KEEP:-}" ] && [ -n "${FRESH_ROOT_ON_DISK:-}" ]; then say "kept the root: $root"
  elif [ -z "$(findmnt -rn -o TARGET | grep -F "$run/" || true)" ]; then rm -rf --one-file-system "$run"
  else say "NOT deleting $run: mounts remain" >&2
  fi
  say "phases (wall clock):"
  printf '  %s\n' "${phases[@]}"
  printf '  %-34s %5d s\n' total $((SECONDS - start))
  if [ $rc = 0 ]; then say "PASS: commit $rev installs, builds and prepares the lab on a bare $suite"
  else say "FAIL (exit $rc): commit $rev does not install/build/prepare on a bare $suite; the failing step is above" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rustup_home=${RUSTUP_HOME:-$home/.rustup}
cargo_bin=${CARGO_HOME:-$home/.cargo}/bin
[ -x "$cargo_bin/cargo" ] || die "no cargo in $cargo_bin on this machine"
[ -d /usr/lib/google-cloud-sdk/bin ] || die "no /usr/lib/google-cloud-sdk on this machine (the image's kubectl)"
mkdir -p "$cache/apt-archives/partial" "$cache/go-build"
say "testing commit $(git -C "$repo" log -1 --format='%h %s' "$rev" | cut -c1-100)"
pem_lines() {
  awk '/-----BEGIN CERTIFICATE-----/ { b = ""; on = 1; next }
       /-----END CERTIFICATE-----/ { print b; on = 0; next }
       on { gsub(/[ \t\r]/, ""); b = b $0 }' "$@"
}
# Fills the (empty) root: runs inside the namespace, after the root's tmpfs is mounted.
populate_root() {
  local t=$SECONDS
  zstd -dc "$tarball" | tar -C "$root" --numeric-owner -xpf -
  git clone -q "$repo" "$root/root/kubemaint"
  git -C "$root/root/kubemaint" checkout -q --detach "$rev"
  # The machine's setup, not packages: name resolution, no service starts from package scripts
  # (openssh-server's postinst would start an sshd), mount points for what is shared.
  cp /etc/resolv.conf /etc/hosts "$root/etc/"
  # The machine's own certificate authorities (a TLS-inspecting egress proxy, say): the certificates in
  # this machine's bundle that are not Mozilla's go where Debian takes local CAs from. They are trusted
  # only once install-deps has installed ca-certificates, which builds the bundle: a list without
  # ca-certificates still fails here.
  mkdir -p "$root/usr/local/share/ca-certificates"
  n=0
  while read -r pem; do
    [ -n "$pem" ] || continue
    n=$((n + 1))
    { echo '-----BEGIN CERTIFICATE-----'; fold -w 64 <<<"$pem"; echo '-----END CERTIFICATE-----'; } \
      >"$root/usr/local/share/ca-certificates/machine-$n.crt"
  done < <(pem_lines /etc/ssl/certs/ca-certificates.crt 2>/dev/null \
    | grep -vxFf <(pem_lines /usr/share/ca-certificates/mozilla/*.crt 2>/dev/null) || true)
  [ $n = 0 ] || say "the root will trust this machine's $n local certificate authorities (as /usr/local/share/ca-certificates/machine-*.crt)"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  mkdir -p "$root/root/.rustup" "$root/root/.cargo/bin" "$root/usr/lib/google-cloud-sdk" \
    "$root/var/cache/kubemaint-go-build" "$root/fresh-root-state"
  ln -s ../lib/google-cloud-sdk/bin/kubectl "$root/usr/bin/kubectl"
  cp "$state/steps.sh" "$root/fresh-root-steps.sh"
  echo "root extracted, repo cloned|$((SECONDS - t))|0" >>"$state/times"
}
export -f populate_root pem_lines say
export root state repo rev tarball

cat >"$state/steps.sh" <<'STEPS'
set -euo pipefail
cd /root/kubemaint
step() {
  local name=$1 t=$SECONDS rc=0
  shift
  printf '\n\033[1m== [fresh root] %s\033[0m\n' "$name"
  "$@" || rc=$?
  echo "$name|$((SECONDS - t))|$rc" >>/fresh-root-state/times
  if [ $rc != 0 ]; then printf '\033[1m== [fresh root] %s FAILED (exit %s)\033[0m\n' "$name" "$rc" >&2; exit $rc; fi
}
# Two runs at once share the .deb cache: apt's archive lock does not wait, this does.
step "scripts/install-deps.sh" flock /var/cache/apt/archives/.fresh-root.lock nice -n "$NICE" scripts/install-deps.sh
step "cargo build --workspace --locked" nice -n "$NICE" cargo build --workspace --locked
step "kubemaint-lab prepare" nice -n "$NICE" target/debug/kubemaint-lab prepare
STEPS

# Runs inside the namespaces: mounts (gone when the namespace ends), then the steps chrooted.
mount_and_run='
set -euo pipefail
r=$1 cache=$2 rustup_home=$3 cargo_bin=$4 nice_n=$5
[ -n "${FRESH_ROOT_ON_DISK:-}" ] || mount -t tmpfs -o mode=0755,size=16g fresh-root "$r"
populate_root
mount --bind "$state" "$r/fresh-root-state"
mount -t proc proc "$r/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r/run"
# /tmp in memory: the temp dirs of the Go build (about 1 GB) stay off the shared disk.
mount -t tmpfs -o mode=1777,nosuid,nodev,size=6g tmpfs "$r/tmp"
bind_ro() { mount --bind "$1" "$2"; mount -o remount,bind,ro "$2"; }
bind_ro "$rustup_home" "$r/root/.rustup"
bind_ro "$cargo_bin" "$r/root/.cargo/bin"
bind_ro /usr/lib/google-cloud-sdk "$r/usr/lib/google-cloud-sdk"
mount --bind "$cache/apt-archives" "$r/var/cache/apt/archives"
mount --bind "$cache/go-build" "$r/var/cache/kubemaint-go-build"
exec chroot "$r" /usr/bin/env -i HOME=/root LANG=C.UTF-8 CI=true TERM=dumb NICE="$nice_n" \
  PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  CARGO_HOME=/root/.cargo RUSTUP_HOME=/root/.rustup KUBEMAINT_LAB_GOCACHE=/var/cache/kubemaint-go-build \
  bash /fresh-root-steps.sh
'
rc=0
isolated bash -c "$mount_and_run" fresh-root "$root" "$cache" "$rustup_home" "$cargo_bin" "$nice_n" </dev/null &
child=$!
wait "$child" || rc=$?
child=
exit $rc
}
