#!/usr/bin/env bash
# The baseline the daemon is measured against: one run of the CronJob it
# replaces. That CronJob started a new container per run and looped
# `oc import-image is/NAME:TAG` over a hard-coded list of streams, one after
# the other, ignoring failures. This script does per stream what
# `oc import-image` does, with kubectl:
#
#   1. GET the ImageStream            (kubectl get is NAME -o json)
#   2. POST an ImageStreamImport       (kubectl create --raw .../imagestreamimports -f body.json)
#      importing the spec tag's source into TAG, with the stream's
#      resourceVersion as precondition, as `oc import-image` sends it.
#
# Each run uses a fresh kubectl discovery cache, as a new CronJob pod would.
#
# Usage:
#   scripts/cronjob-baseline.sh [--kubeconfig FILE] [--rss-log FILE] NAMESPACE TAG STREAM...
#   scripts/cronjob-baseline.sh [...] NAMESPACE TAG - < streams.txt   (one name per line)
#
#   --rss-log FILE   append the peak resident memory (KiB) of every kubectl
#                    process to FILE, one number per line (needs /usr/bin/time)
#
# Environment: KUBECTL (default kubectl), KUBECONFIG.
# Prints one line per stream and a summary; exits 0 even when imports
# failed (as the CronJob did) and 2 on usage errors.
set -uo pipefail

usage() {
  sed -n '/^# Usage:/,/^# Environment/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

KUBECTL=${KUBECTL:-kubectl}
kubeconfig_args=()
rss_log=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kubeconfig) [ $# -ge 2 ] || usage; kubeconfig_args=(--kubeconfig "$2"); shift 2 ;;
    --rss-log) [ $# -ge 2 ] || usage; rss_log=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 3 ] || usage
namespace=$1
tag=$2
shift 2
if [ "$1" = "-" ]; then
  mapfile -t streams
else
  streams=("$@")
fi

for tool in "$KUBECTL" jq; do
  command -v "$tool" >/dev/null || { echo "cronjob-baseline: $tool is not on PATH" >&2; exit 2; }
done
if [ -n "$rss_log" ] && [ ! -x /usr/bin/time ]; then
  echo "cronjob-baseline: --rss-log needs /usr/bin/time (Debian package time)" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kubectl_() {
  if [ -n "$rss_log" ]; then
    /usr/bin/time -f '%M' -a -o "$rss_log" \
      "$KUBECTL" "${kubeconfig_args[@]}" --cache-dir "$work/cache" "$@"
  else
    "$KUBECTL" "${kubeconfig_args[@]}" --cache-dir "$work/cache" "$@"
  fi
}

started=$(date +%s.%N)
ok=0
failed=0
for name in "${streams[@]}"; do
  [ -n "$name" ] || continue
  if ! kubectl_ -n "$namespace" get is "$name" -o json >"$work/is.json" 2>"$work/err"; then
    echo "$namespace/$name:$tag: get failed: $(tr '\n' ' ' <"$work/err")"
    failed=$((failed + 1))
    continue
  fi
  if ! jq --arg tag "$tag" '
      . as $s
      | ([$s.spec.tags[]? | select(.name == $tag)][0]) as $t
      | if $t == null or $t.from.kind != "DockerImage" then error("no spec tag \($tag) from a DockerImage") else . end
      | {kind: "ImageStreamImport", apiVersion: "image.openshift.io/v1",
         metadata: {name: $s.metadata.name, namespace: $s.metadata.namespace,
                    resourceVersion: $s.metadata.resourceVersion},
         spec: {import: true,
                images: [{from: $t.from, to: {name: $tag},
                          importPolicy: ($t.importPolicy // {}),
                          referencePolicy: ($t.referencePolicy // {type: "Source"})}]}}' \
      "$work/is.json" >"$work/body.json" 2>"$work/err"; then
    echo "$namespace/$name:$tag: $(tr '\n' ' ' <"$work/err")"
    failed=$((failed + 1))
    continue
  fi
  if ! kubectl_ create --raw "/apis/image.openshift.io/v1/namespaces/$namespace/imagestreamimports" \
      -f "$work/body.json" >"$work/out.json" 2>"$work/err"; then
    echo "$namespace/$name:$tag: import failed: $(tr '\n' ' ' <"$work/err")"
    failed=$((failed + 1))
    continue
  fi
  result=$(jq -r '.status.images[0].status | "\(.status) \(.reason // "") \(.message // "")"' "$work/out.json")
  case "$result" in
    Success*) ok=$((ok + 1)); echo "$namespace/$name:$tag: imported" ;;
    *) failed=$((failed + 1)); echo "$namespace/$name:$tag: import failed: $result" ;;
  esac
done
ended=$(date +%s.%N)
awk -v ok="$ok" -v failed="$failed" -v n="${#streams[@]}" -v a="$started" -v b="$ended" \
  'BEGIN { printf "cronjob-baseline: %d imported, %d failed, %d streams in %.3f s\n", ok, failed, n, b - a }'
