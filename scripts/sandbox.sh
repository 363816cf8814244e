#!/usr/bin/env bash
# The sandbox: a real kube-apiserver + etcd behind the OpenShift image-API
# shim, a real registry seeded like packit (packit-stg, packit-prod), and the
# daemon running on them with examples/sandbox.yaml (stg immediate; prod in a
# one-minute window every three minutes). A new image is pushed every 40 s,
# alternating stg and prod, so you can watch stg follow at once and prod wait
# for its window. The cluster runs the workload controllers and a
# Deployment per pushed image in each namespace, following its tag through
# an image trigger; the fourth push is a bad prod image (it crash-loops):
# prod's window imports it, the rollout fails, the daemon pins the tag back
# (onFailedRollout: pinBack; the daemon runs with the admin kubeconfig, so
# it has the pin-back rights), the Deployment returns to the previous image,
# and `status` says so. Prod's window also waits for alerts: a Prometheus
# with examples/sandbox-alerts.yaml scrapes a Pushgateway, and prod's
# `alerts` gate holds its imports while `PackitProdDegraded` fires. The
# sixth push is a prod image pushed while that alert fires: the window opens
# and holds it (Event `Gated`), the alert stops after about 20 s, and the
# window's next poll (or the next window) imports it. The INFO block prints
# the curl commands that fire and stop the alert. Ctrl-C stops everything.
#
#   scripts/sandbox.sh                 # run it
#   SANDBOX_PUSH_EVERY=0 scripts/sandbox.sh   # no automatic pushes
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
push_every=${SANDBOX_PUSH_EVERY:-40}
listen=${IMPORT_SCHEDULER_LISTEN_ADDR:-127.0.0.1:8080}

# The output may go to a pipe whose reader is gone (`| tee log` and Ctrl-C
# stops tee first). A write there must fail quietly, not kill the script
# before it stopped the cluster: ignore SIGPIPE, and never let a message fail.
trap '' PIPE
say() { printf '\033[1m[sandbox]\033[0m %s\n' "$*" >&2 2>/dev/null || true; }

dir=$(mktemp -d -t import-scheduler-sandbox.XXXXXX)
state="$dir/cluster.json"
kubeconfig="$dir/kubeconfig"
pids=()
# Stops a process: TERM, then KILL after `grace` tenths of a second. Quiet,
# and never fails.
stop() {
  local pid=$1 grace=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((t = 0; t < grace; t++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1 || true
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  # Once: a second Ctrl-C or a closed terminal must not cut it short, and
  # nothing below needs the output to work.
  trap '' INT TERM HUP
  trap - EXIT
  set +e
  say "stopping"
  # Newest first: the pusher, the daemon (it releases its Lease through the
  # cluster), then the cluster, whether or not the daemon stopped cleanly.
  # The cluster's processes stop with it (they watch it).
  for ((i = ${#pids[@]} - 1; i > 0; i--)); do
    stop "${pids[$i]}" 150
  done
  if [ "${#pids[@]}" -gt 0 ]; then
    stop "${pids[0]}" 300
  fi
  rm -rf "$dir"
  say "stopped; nothing left running"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# Tools' output goes to logs: on a closed pipe they would fail on it.
run_logged() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 || {
    tail -n 40 "$log" >&2 2>/dev/null || true
    say "failed: $* (log above, full log: $log)"
    return 1
  }
}

say "installing what the test cluster needs (first time: Debian packages, the Kubernetes and OpenShift servers built from source, ~35-50 min on 2 cores; log: $dir/install-deps.log)"
run_logged "$dir/install-deps.log" test-cluster/scripts/install-deps.sh

say "building import-scheduler and test-cluster"
run_logged "$dir/build.log" cargo build --quiet --bin import-scheduler -p image-import-scheduler
run_logged "$dir/build-test-cluster.log" cargo build --quiet --bin test-cluster -p test-cluster
target=${CARGO_TARGET_DIR:-$root/target}
bin="$target/debug"

say "starting the test cluster"
# In its own session, so Ctrl-C reaches the daemon first; cleanup stops it.
setsid "$bin/test-cluster" up --seed packit --workloads --prometheus-rules examples/sandbox-alerts.yaml --kubeconfig "$kubeconfig" --state "$state" >"$dir/cluster.out" 2>"$dir/cluster.log" &
pids+=($!)
for _ in $(seq 1 240); do
  [ -s "$state" ] && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    cat "$dir/cluster.log" >&2 2>/dev/null || true
    say "the test cluster did not start (log above)"
    exit 1
  fi
  sleep 0.5
done
[ -s "$state" ] || { cat "$dir/cluster.log" >&2 2>/dev/null || true; say "the test cluster did not start within 2 minutes"; exit 1; }

# The state file is JSON, one key a line: `"prometheus": "http://..."`.
state_url() { sed -n "s/^ *\"$1\": *\"\([^\"]*\)\".*/\1/p" "$state"; }
prometheus=$(state_url prometheus)
pushgateway=$(state_url pushgateway)
[ -n "$prometheus" ] && [ -n "$pushgateway" ] || { say "the state file $state names no Prometheus or Pushgateway"; exit 1; }
# examples/sandbox.yaml with the alerts gate asking this Prometheus.
sed "s|^\( *prometheusUrl:\).*|\1 $prometheus|" examples/sandbox.yaml >"$dir/config.yaml"

export KUBECONFIG=$kubeconfig
kubectl create configmap image-import-scheduler -n packit-prod \
  --from-file=config.yaml="$dir/config.yaml" >/dev/null

# To stderr, like every message; a closed pipe there fails the write (SIGPIPE
# is ignored), which must not stop the script.
{ cat >&2 <<INFO

  The cluster runs. In another terminal:

    export KUBECONFIG=$kubeconfig
    kubectl get is -n packit-stg ; kubectl get is -n packit-prod
    kubectl get events -n packit-prod --sort-by=.metadata.creationTimestamp
    kubectl edit configmap image-import-scheduler -n packit-prod      # hot reload
    curl -s $listen/metrics | grep image_import_scheduler_
    $bin/import-scheduler status --configmap packit-prod/image-import-scheduler
    $bin/test-cluster push --state $state packit/packit-worker:prod
    $bin/test-cluster push --state $state --bad crash-loop packit/packit-worker:prod   # a bad image
    kubectl get deploy -n packit-prod -o wide      # the image each Deployment runs
    $bin/import-scheduler restore --env prod --stream packit-worker --configmap packit-prod/image-import-scheduler   # after a pin-back

  Alerts (prod's window holds its imports while PackitProdDegraded fires):

    printf 'packit_prod_degraded 1\\n' | curl -s --data-binary @- $pushgateway/metrics/job/sandbox   # fire
    curl -s -X DELETE $pushgateway/metrics/job/sandbox                                                 # stop
    curl -s $prometheus/api/v1/alerts
    kubectl get events -n packit-prod --field-selector reason=Gated

  Configuration: examples/sandbox.yaml (stg immediate; prod window: 1 minute every 3 minutes,
  held while a packit-prod alert fires; its Prometheus: $prometheus)
  $("$bin/import-scheduler" next --config examples/sandbox.yaml --env prod --count 2 | tail -n 2)

INFO
} || true

say "starting the daemon (logs below)"
IMPORT_SCHEDULER_NAMESPACE=packit-prod \
IMPORT_SCHEDULER_LISTEN_ADDR=$listen \
IMPORT_SCHEDULER_LOG_FORMAT=${IMPORT_SCHEDULER_LOG_FORMAT:-text} \
IMPORT_SCHEDULER_POD_NAME=sandbox \
  "$bin/import-scheduler" run --kubeconfig "$kubeconfig" &
pids+=($!)

# Fires the alert, pushes a prod image, waits until the window holds it
# (a `Gated` Event), keeps it held about 20 s, and stops the alert.
fire_alert() { printf 'packit_prod_degraded 1\n' | curl -s --data-binary @- "$pushgateway/metrics/job/sandbox" >/dev/null; }
stop_alert() { curl -s -X DELETE "$pushgateway/metrics/job/sandbox" >/dev/null; }
alert_story() {
  local img=$1 env=$2 digest t
  fire_alert || true
  # Firing within seconds (scrape and evaluation every second).
  for ((t = 0; t < 30; t++)); do
    curl -s "$prometheus/api/v1/alerts" 2>/dev/null | grep -q '"state":"firing"' && break
    sleep 1
  done
  digest=$("$bin/test-cluster" push --state "$state" "packit/$img:$env" 2>/dev/null | tail -n1)
  say "fired the alert PackitProdDegraded and pushed packit/$img:$env ${digest:0:19}: prod's window holds it while the alert fires (kubectl get events -n packit-prod --field-selector reason=Gated)"
  # The window opens within three minutes.
  for ((t = 0; t < 240; t += 2)); do
    kubectl get events -n packit-prod --field-selector "reason=Gated,involvedObject.name=$img" \
      -o 'jsonpath={.items[*].message}' 2>/dev/null | grep -q PackitProdDegraded && break
    sleep 2
  done
  if ((t < 240)); then
    say "prod's window holds packit/$img:$env: the alert fires (Event Gated; \`import-scheduler status\` shows it gated); stopping the alert in 20 s"
  else
    say "no Gated Event for packit/$img:$env within 4 minutes; stopping the alert in 20 s"
  fi
  sleep 20
  stop_alert || true
  say "stopped the alert: prod's window now imports packit/$img:$env at its next poll (or, if it closed meanwhile, the next window does)"
}

if [ "$push_every" -gt 0 ]; then
  (
    images=(packit-worker packit-service packit-dashboard)
    i=0
    while sleep "$push_every"; do
      env=$([ $((i % 2)) -eq 0 ] && echo stg || echo prod)
      img=${images[$((i / 2 % ${#images[@]}))]}
      if [ "$i" -eq 5 ]; then
        alert_story "$img" "$env"
      elif [ "$i" -eq 3 ]; then
        digest=$("$bin/test-cluster" push --state "$state" --bad crash-loop "packit/$img:$env" 2>/dev/null | tail -n1)
        say "pushed a BAD image packit/$img:$env ${digest:0:19} (it crash-loops: prod's window imports it, the rollout fails, the tag is pinned back and the Deployment returns to the previous image; then see \`import-scheduler status\`)"
      else
        digest=$("$bin/test-cluster" push --state "$state" "packit/$img:$env" 2>/dev/null | tail -n1)
        say "pushed packit/$img:$env ${digest:0:19} ($([ "$env" = stg ] && echo 'stg imports it within 10 s' || echo 'prod waits for its window'))"
      fi
      i=$((i + 1))
    done
  ) &
  pids+=($!)
fi

wait "${pids[1]}"
