#!/usr/bin/env bash
# Installs what the test cluster needs on a Debian bookworm machine and builds
# kube-apiserver, kube-controller-manager and kube-scheduler once per machine
# into a cache outside the clone, then the real OpenShift servers and oc
# (build-openshift.sh, same cache). Only the Kubernetes binaries missing from
# the cache are built, in one `make` (they share most of their packages).
#
#   test-cluster/scripts/install-deps.sh          # packages + Kubernetes + OpenShift
#   test-cluster/scripts/install-deps.sh --check  # fail instead of installing or building
#   KUBE_APISERVER_CACHE=/some/dir ...            # where the binaries are cached
#
# Prints the path of the cached kube-apiserver on its last line.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE_DIR=${KUBE_APISERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-import-scheduler}
BIN="$CACHE_DIR/kube-apiserver-v$K8S_VERSION"
# The Kubernetes commands the test cluster runs; each cached as
# $CACHE_DIR/<command>-v$K8S_VERSION.
KUBE_CMDS=(kube-apiserver kube-controller-manager kube-scheduler)

CHECK_ONLY=false
[ "${1:-}" = --check ] && CHECK_ONLY=true

log() { printf '[install-deps] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# One run at a time per machine: CI and several test processes may call this
# concurrently; later ones wait and then find everything installed.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/install.lock"
if ! flock -n 9; then
  log "another install is running; waiting for it"
  flock 9
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# prometheus (with promtool) and prometheus-pushgateway: the alert rules'
# unit tests and the Prometheus the alert tests run (test-cluster/src/prometheus.rs).
RUNTIME_PKGS=(etcd-server docker-registry prometheus prometheus-pushgateway openssl curl patch xz-utils)
BUILD_PKGS=(golang-1.19-go make rsync golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev dpkg-dev)

to_build=()
for cmd in "${KUBE_CMDS[@]}"; do
  [ -x "$CACHE_DIR/$cmd-v$K8S_VERSION" ] || to_build+=("$cmd")
done

missing=()
for p in "${RUNTIME_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#to_build[@]} -gt 0 ]; then
  for p in "${BUILD_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
fi

# kubectl: the tests drive the shim with it and render the manifests with
# `kubectl kustomize`. Machines of this kind ship one; Debian's is the fallback
# (1.20: old enough that kustomize components may not render).
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)

if $CHECK_ONLY; then
  [ ${#missing[@]} -eq 0 ] || die "missing Debian packages: ${missing[*]}; run $0"
  [ ${#to_build[@]} -eq 0 ] || die "not built yet: ${to_build[*]} (expected in $CACHE_DIR); run $0"
fi
# Debian starts the packaged services on install; the test cluster runs its
# own instances on free ports, so the system ones only take memory (and
# their default ports). A policy-rc.d that answers 101 tells invoke-rc.d and
# deb-systemd-invoke not to start anything, with or without systemd; one the
# machine already has (containers often ship one) is left as it is.
PACKAGED_SERVICES=(etcd docker-registry prometheus prometheus-pushgateway)
POLICY_RC=/usr/sbin/policy-rc.d
install_packages() {
  local own_policy=false
  if ! as_root test -e "$POLICY_RC"; then
    printf '#!/bin/sh\n# image-import-scheduler install-deps.sh: start no service during the install\nexit 101\n' \
      | as_root tee "$POLICY_RC" >/dev/null
    as_root chmod 0755 "$POLICY_RC"
    own_policy=true
  fi
  local status=0
  as_root apt-get update -qq || status=$?
  if [ "$status" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >&2 || status=$?
  fi
  if $own_policy; then as_root rm -f "$POLICY_RC"; fi
  return "$status"
}
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  install_packages "${missing[@]}"
fi
# Services an earlier install started anyway, under systemd. (Without
# systemd nothing is stopped: some init scripts stop by program name, which
# would also kill the test clusters' own etcd or registry.)
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  for svc in "${PACKAGED_SERVICES[@]}"; do
    as_root systemctl stop "$svc" >/dev/null 2>&1 || true
  done
fi

openshift() {
  # Its own lock: release ours first so a test process that only needs the
  # OpenShift binaries is not kept waiting by this one.
  flock -u 9
  if $CHECK_ONLY; then
    "$(dirname "$0")/build-openshift.sh" --check >/dev/null
  else
    "$(dirname "$0")/build-openshift.sh" >/dev/null
  fi
}

if [ ${#to_build[@]} -eq 0 ]; then
  log "${KUBE_CMDS[*]} v$K8S_VERSION cached in $CACHE_DIR"
  openshift
  echo "$BIN"
  exit 0
fi

log "building ${to_build[*]} v$K8S_VERSION from Debian's source package (about 6 minutes for kube-apiserver, about 19 more for the other two on a busy 2-core machine; once per machine)"
mkdir -p "$CACHE_DIR"
work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"

# apt-get source needs a deb-src entry for the mirror the machine already uses.
srclist=/etc/apt/sources.list.d/image-import-scheduler-src.list
if ! grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # The first non-security Debian mirror of a `URIs:` (deb822) or `deb` line.
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ {print $2} /^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' \
    | grep -v security | head -n1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  log "adding deb-src for $mirror bookworm"
  # apt refuses two entries for one mirror with different Signed-By values.
  keyring=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  opts=${keyring:+[signed-by=$keyring] }
  echo "deb-src ${opts}$mirror bookworm main" | as_root tee "$srclist" >/dev/null
  as_root apt-get update -qq
fi

(cd "$work" && apt-get source --download-only kubernetes >&2)
orig=$(ls "$work"/kubernetes_*.orig.tar.gz | head -n1)
log "unpacking $(basename "$orig")"
mkdir "$work/src"
tar -xzf "$orig" -C "$work/src" --strip-components=1

# The vendored reflect2/json-iterator crash when built with Go >= 1.18;
# Debian's packaged copies do not.
for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
  rm -rf "$work/src/vendor/$pkg"
  mkdir -p "$work/src/vendor/$pkg"
  rsync -a "/usr/share/gocode/src/$pkg/" "$work/src/vendor/$pkg/"
done

what=$(printf 'cmd/%s ' "${to_build[@]}")
what=${what% }
log "compiling (make WHAT=\"$what\")"
start=$(date +%s)
(cd "$work/src" && env -u GOFLAGS -u GOROOT -u GOPATH PATH=/usr/lib/go-1.19/bin:$PATH \
  CGO_ENABLED=0 make WHAT="$what" >&2)
for cmd in "${to_build[@]}"; do
  out="$CACHE_DIR/$cmd-v$K8S_VERSION"
  install -m 0755 "$work/src/_output/bin/$cmd" "$out.tmp"
  mv "$out.tmp" "$out"
  log "$cmd cached at $out"
done
log "built ${to_build[*]} in $(($(date +%s) - start)) s"
openshift
echo "$BIN"
