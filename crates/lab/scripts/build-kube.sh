#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 from
# Debian bookworm's `kubernetes` source package, the way its debian/rules does
# (GOPATH mode, `make WHAT=cmd/...`), into "$1/bin". Idempotent: a finished build
# is marked by "$1/bin/.complete".
#
# The source vendors modern-go/reflect2 v1.0.1, which crashes under Go >= 1.18
# whenever the apiserver encodes an unstructured object (every custom resource).
# We replace it with v1.0.2 from golang-github-modern-go-reflect2-dev first.
set -euo pipefail
out=${1:?usage: build-kube.sh CACHE_DIR}
srcver="1.20.5+really1.20.2"
mkdir -p "$out/src" "$out/bin"
if [ -f "$out/bin/.complete" ]; then
  echo "kube binaries already built in $out/bin"; exit 0
fi
need_apt=()
command -v go >/dev/null || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need_apt+=(golang-github-modern-go-reflect2-dev)
command -v dpkg-source >/dev/null || need_apt+=(dpkg-dev)
command -v rsync >/dev/null || need_apt+=(rsync)
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
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
cd "$out/src"
tree="kubernetes-$srcver"
if [ ! -d "$tree" ]; then
  apt-get source -qq "kubernetes=$srcver-1.1+deb12u1" 2>/dev/null || apt-get source -qq kubernetes
fi
cd "$tree"
# Swap in reflect2 v1.0.2 (sources only; keep vendor/modules.txt as it is).
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
HOME=${HOME:-/root} make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  install -m 0755 "_output/bin/$b" "$out/bin/$b"
done
"$out/bin/kube-apiserver" --version
touch "$out/bin/.complete"
