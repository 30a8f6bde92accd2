#!/usr/bin/env bash
# Builds the lab's control plane into "$1/kube-$2/bin" (usage: build-kube.sh CACHE_DIR VERSION).
#
# v1.20.2 (the real version): kube-apiserver, kube-controller-manager, kube-scheduler and kubeadm
# from Debian bookworm's `kubernetes` source package, the way its debian/rules does (GOPATH mode,
# `make WHAT=cmd/...`). The source tree stays in "$1/kube-v1.20.2/src" with its Go build cache.
#
# Any other VERSION is a stand-in: the same v1.20.2 code relinked with that version stamp. The
# tree's hack/lib/version.sh ignores KUBE_GIT_VERSION from the environment (the release tarball
# hard-codes 'tag: v1.20.2' in an archive block) but loads every KUBE_GIT_* variable from
# KUBE_GIT_VERSION_FILE; those only reach the linker's -X flags, so with the Go build cache warm
# only the link step reruns (~10 s per binary).
#
# Idempotent: a binary present in the bin directory is not built again (binaries are installed
# under a temporary name and renamed). One build at a time: an flock on "$1/.kube-build.lock".
#
# The source vendors modern-go/reflect2 v1.0.1, which crashes under Go >= 1.18 whenever the
# apiserver encodes an unstructured object (every custom resource). We replace it with v1.0.2 from
# golang-github-modern-go-reflect2-dev first.
set -euo pipefail
cache=${1:?usage: build-kube.sh CACHE_DIR VERSION}
version=${2:?usage: build-kube.sh CACHE_DIR VERSION}
real=v1.20.2
srcver="1.20.5+really1.20.2"
if ! [[ $version =~ ^v1\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "build-kube.sh: $version is not a release version like v1.19.16" >&2
  exit 2
fi
minor=${BASH_REMATCH[1]}
src_root="$cache/kube-$real/src"
out="$cache/kube-$version"
mkdir -p "$cache" "$src_root" "$out/bin"
exec 9>"$cache/.kube-build.lock"
if ! flock -n 9; then
  echo "another kube build runs in $cache; waiting for it"
  flock 9
fi

wanted=(kube-apiserver kube-controller-manager kube-scheduler)
[ "$version" = "$real" ] && wanted+=(kubeadm)
missing=()
for b in "${wanted[@]}"; do
  [ -x "$out/bin/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "kube binaries $version already built in $out/bin"; exit 0
fi

need_apt=()
command -v go >/dev/null || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need_apt+=(golang-github-modern-go-reflect2-dev)
command -v dpkg-source >/dev/null || need_apt+=(dpkg-dev)
command -v rsync >/dev/null || need_apt+=(rsync)
cd "$src_root"
tree="kubernetes-$srcver"
if [ ! -d "$tree" ]; then
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    echo "adding a bookworm deb-src entry"
    cat > /etc/apt/sources.list.d/kubemaint-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
  fi
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
if [ ! -d "$tree" ]; then
  apt-get source -qq "kubernetes=$srcver-1.1+deb12u1" 2>/dev/null || apt-get source -qq kubernetes
fi
cd "$tree"
# Swap in reflect2 v1.0.2 (sources only; keep vendor/modules.txt as it is). Same files each time,
# so Go's content-keyed cache still hits.
rm -rf vendor/github.com/modern-go/reflect2
mkdir -p vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2/. vendor/github.com/modern-go/reflect2/
# The kubernetes build keeps its Go build cache in _output/local/go/cache (hack/lib/golang.sh sets
# GOCACHE). KUBEMAINT_LAB_GOCACHE puts it elsewhere, so that a throw-away tree (CI's fresh root,
# scripts/fresh-root.sh) does not recompile unchanged packages; Go keys its cache by content.
if [ -n "${KUBEMAINT_LAB_GOCACHE:-}" ]; then
  mkdir -p "$KUBEMAINT_LAB_GOCACHE" _output/local/go
  rm -rf _output/local/go/cache
  ln -s "$KUBEMAINT_LAB_GOCACHE" _output/local/go/cache
fi
export GOPATH="$PWD/.go" CGO_ENABLED=0 GO111MODULE=off GOFLAGS=-mod=vendor
export GOFLAGS=
mkdir -p .go/src/k8s.io
[ -L .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
if [ "$version" = "$real" ]; then
  unset KUBE_GIT_VERSION_FILE
else
  # The stamp: the real tree's commit and tree state, another version.
  stamp="$out/version.env"
  cat > "$stamp" <<EOF
KUBE_GIT_COMMIT='faecb196815e248d3ecfb03c680a4507229c2a56'
KUBE_GIT_TREE_STATE='archive'
KUBE_GIT_VERSION='$version'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='$minor'
EOF
  export KUBE_GIT_VERSION_FILE="$stamp"
fi
what=()
for b in "${missing[@]}"; do what+=("cmd/$b"); done
HOME=${HOME:-/root} make WHAT="${what[*]}"
for b in "${missing[@]}"; do
  install -m 0755 "_output/bin/$b" "$out/bin/.$b.tmp"
  mv -f "$out/bin/.$b.tmp" "$out/bin/$b"
done
got=$("$out/bin/kube-apiserver" --version)
echo "$got"
if [ "$got" != "Kubernetes $version" ]; then
  echo "build-kube.sh: kube-apiserver says '$got', expected 'Kubernetes $version'" >&2
  rm -f "$out/bin/kube-apiserver"
  exit 1
fi
touch "$out/bin/.complete"
