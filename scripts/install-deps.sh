#!/usr/bin/env bash
# Installs the system packages kubemaint's build, lab and tests need (Debian bookworm, as root).
# protoc and its well-known types (libprotobuf-dev: google/protobuf/*.proto) build etcd-client's gRPC stubs; Go and reflect2 build the lab's control plane;
# dpkg-dev/rsync are what the kubernetes source package's build uses.
set -euo pipefail
pkgs=(bc protobuf-compiler libprotobuf-dev golang-go golang-github-modern-go-reflect2-dev dpkg-dev rsync jq openssh-server time curl)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v kubectl >/dev/null || { echo "kubectl is missing: the machine image's kubectl package provides 1.27-1.33" >&2; exit 1; }
ls /usr/lib/google-cloud-sdk/bin/kubectl.1.27 >/dev/null
