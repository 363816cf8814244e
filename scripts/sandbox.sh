#!/usr/bin/env bash
# The sandbox: a real kube-apiserver + etcd behind the OpenShift image-API
# shim, a real registry seeded like packit (packit-stg, packit-prod), and the
# daemon running on them with examples/sandbox.yaml (stg immediate; prod in a
# one-minute window every three minutes). A new image is pushed every 40 s,
# alternating stg and prod, so you can watch stg follow at once and prod wait
# for its window. Ctrl-C stops everything.
#
#   scripts/sandbox.sh                 # run it
#   SANDBOX_PUSH_EVERY=0 scripts/sandbox.sh   # no automatic pushes
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
push_every=${SANDBOX_PUSH_EVERY:-40}

say() { printf '\033[1m[sandbox]\033[0m %s\n' "$*" >&2; }

say "installing what the test cluster needs (first time: Debian packages and a kube-apiserver build, ~6 min)"
test-cluster/scripts/install-deps.sh >/dev/null

say "building import-scheduler and test-cluster"
cargo build --quiet --bin import-scheduler -p image-import-scheduler
cargo build --quiet --bin test-cluster -p test-cluster
target=${CARGO_TARGET_DIR:-$root/target}
bin="$target/debug"

dir=$(mktemp -d -t import-scheduler-sandbox.XXXXXX)
state="$dir/cluster.json"
kubeconfig="$dir/kubeconfig"
pids=()
cleanup() {
  trap - INT TERM EXIT
  say "stopping"
  # The daemon first (it releases its Lease through the cluster), then the rest.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  rm -rf "$dir"
  say "stopped; nothing left running"
}
trap cleanup INT TERM EXIT

say "starting the test cluster"
# In its own session, so Ctrl-C reaches the daemon first; cleanup stops it.
setsid "$bin/test-cluster" up --seed packit --kubeconfig "$kubeconfig" --state "$state" >"$dir/cluster.out" 2>"$dir/cluster.log" &
pids+=($!)
for _ in $(seq 1 240); do
  [ -s "$state" ] && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    cat "$dir/cluster.log" >&2
    say "the test cluster did not start (log above)"
    exit 1
  fi
  sleep 0.5
done
[ -s "$state" ] || { cat "$dir/cluster.log" >&2; say "the test cluster did not start within 2 minutes"; exit 1; }

export KUBECONFIG=$kubeconfig
kubectl create configmap image-import-scheduler -n packit-prod \
  --from-file=config.yaml=examples/sandbox.yaml >/dev/null

cat >&2 <<INFO

  The cluster runs. In another terminal:

    export KUBECONFIG=$kubeconfig
    kubectl get is -n packit-stg ; kubectl get is -n packit-prod
    kubectl get events -n packit-prod --sort-by=.metadata.creationTimestamp
    kubectl edit configmap image-import-scheduler -n packit-prod      # hot reload
    curl -s localhost:8080/metrics | grep image_import_scheduler_
    $bin/import-scheduler status --configmap packit-prod/image-import-scheduler
    $bin/test-cluster push --state $state packit/packit-worker:prod

  Configuration: examples/sandbox.yaml (stg immediate; prod window: 1 minute every 3 minutes)
  $("$bin/import-scheduler" next --config examples/sandbox.yaml --env prod --count 2 | tail -n 2)

INFO

say "starting the daemon (logs below)"
IMPORT_SCHEDULER_NAMESPACE=packit-prod \
IMPORT_SCHEDULER_LISTEN_ADDR=${IMPORT_SCHEDULER_LISTEN_ADDR:-127.0.0.1:8080} \
IMPORT_SCHEDULER_LOG_FORMAT=${IMPORT_SCHEDULER_LOG_FORMAT:-text} \
IMPORT_SCHEDULER_POD_NAME=sandbox \
  "$bin/import-scheduler" run --kubeconfig "$kubeconfig" &
pids+=($!)

if [ "$push_every" -gt 0 ]; then
  (
    images=(packit-worker packit-service packit-dashboard)
    i=0
    while sleep "$push_every"; do
      env=$([ $((i % 2)) -eq 0 ] && echo stg || echo prod)
      img=${images[$((i / 2 % ${#images[@]}))]}
      digest=$("$bin/test-cluster" push --state "$state" "packit/$img:$env" 2>/dev/null | tail -n1)
      say "pushed packit/$img:$env ${digest:0:19} ($([ "$env" = stg ] && echo 'stg imports it within 10 s' || echo 'prod waits for its window'))"
      i=$((i + 1))
    done
  ) &
  pids+=($!)
fi

wait "${pids[1]}"
