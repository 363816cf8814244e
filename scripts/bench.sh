#!/usr/bin/env bash
# Runs every benchmark in one go on this machine and keeps the output:
#
#   scripts/bench.sh               # the recorded run (about 20 minutes after the build)
#   scripts/bench.sh --quick       # smaller sizes, 1-minute idle run (about 7 minutes)
#   scripts/bench.sh --sequential  # run the idle benchmark alone at the end (+10 minutes)
#
# Installs what the benchmarks need first (the test cluster's Debian packages
# and kube-apiserver, as scripts/test.sh does, plus jq and GNU time for the
# CronJob baseline), records the machine, builds the release binary and the
# bench targets (benches/*.rs), then runs them:
#
#   schedule       schedule engine: next-window computations per second (alone)
#   window_start   window start -> every tag imported, 6/60/600 streams,
#                  daemon (import.concurrency 4 and 16) vs scripts/cronjob-baseline.sh
#   push_latency   push -> import in immediate mode: polling (5s, 30s) and push hook
#   idle           memory, CPU and API requests of an idle daemon over 10 minutes
#
# idle runs on its own test cluster in the background while window_start and
# push_latency run: its figures are the daemon's own CPU time, memory and
# request counter, which other load hardly moves (--sequential to check).
#
# Each target also runs alone: cargo bench --bench NAME [-- --quick].
# Output goes to target/bench-results/<UTC time>/ (one file per target, plus
# machine.txt); the daemons' raw JSON logs to target/bench-logs/.
# docs/benchmarks.md records a run and what the figures mean.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
sequential=""
for arg in "$@"; do
  case "$arg" in
    --quick) quick=(--quick) ;;
    --sequential) sequential=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $arg (known: --quick, --sequential)" >&2; exit 2 ;;
  esac
done

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

echo "==> benchmark dependencies"
test-cluster/scripts/install-deps.sh | tail -n1
need=()
command -v jq >/dev/null || need+=(jq)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! command -v kubectl >/dev/null; then
  echo "kubectl is not on PATH; the CronJob baseline needs it (https://kubernetes.io/docs/tasks/tools/)" >&2
  exit 1
fi

out="target/bench-results/$(date -u +%Y%m%dT%H%M%SZ)${quick:+-quick}"
mkdir -p "$out"

echo "==> bench targets"
cargo bench --locked --no-run --message-format=json-render-diagnostics >"$out/build.json"
# The binary that ships, built without the dev-dependencies' crate features
# (cargo bench builds the bin with them); the benchmarks run this one.
echo "==> release binary"
cargo build --release --locked --bin import-scheduler
cp target/release/import-scheduler "$out/import-scheduler"
export IMPORT_SCHEDULER_BIN="$PWD/$out/import-scheduler"
exe() {
  jq -r --arg n "$1" 'select(.reason == "compiler-artifact" and .target.name == $n
    and (.target.kind | index("bench"))) | .executable' "$out/build.json" | tail -n1
}

{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus:    $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
  echo "memory:  $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
  echo "kernel:  $(uname -sr)"
  echo "rustc:   $(rustc --version)"
  echo "kubectl: $(kubectl version --client 2>/dev/null | head -n1)"
  echo "binary:  $(stat -c %s "$IMPORT_SCHEDULER_BIN") bytes, $(file -b "$IMPORT_SCHEDULER_BIN" 2>/dev/null | grep -o 'stripped\|not stripped' || true) (cargo build --release --bin import-scheduler; ls -l target/release/import-scheduler)"
} | tee "$out/machine.txt"

load() { cut -d' ' -f1-3 /proc/loadavg; }
busy() { awk -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN { exit !(l >= 1.0) }'; }
# Latencies need a quiet machine: wait (up to BENCH_LOAD_WAIT seconds, default
# 600) for the 1-minute load to drop below 1.0, e.g. after the build above.
waited=0
while busy && [ "$waited" -lt "${BENCH_LOAD_WAIT:-600}" ]; do
  [ "$waited" -eq 0 ] && echo "waiting for the 1-minute load ($(load)) to drop below 1.0"
  sleep 10
  waited=$((waited + 10))
done
echo "load:    $(load) (1, 5, 15 min; waited ${waited} s)" | tee -a "$out/machine.txt"
if busy; then
  echo "warning: the 1-minute load is still $(cut -d' ' -f1 /proc/loadavg); latency figures measured now are pessimistic" | tee -a "$out/machine.txt"
fi

run() {
  local target=$1 started
  started=$(date +%s)
  echo "==> $target (cargo bench --bench $target -- ${quick[*]}); load $(load)"
  "$(exe "$target")" --bench "${quick[@]}" 2>&1 | tee "$out/$target.txt"
  echo "($target took $(($(date +%s) - started)) s; load after $(load))" | tee -a "$out/$target.txt"
}

# If a benchmark fails, stop the background one and the daemon it runs.
stop_idle() {
  if [ -n "${idle_pid:-}" ] && kill -0 "$idle_pid" 2>/dev/null; then
    for child in $(pgrep -P "$idle_pid" || true); do kill -TERM "$child" 2>/dev/null || true; done
    kill -TERM "$idle_pid" 2>/dev/null || true
  fi
}
trap stop_idle EXIT

run schedule
if [ -z "$sequential" ]; then
  echo "==> idle (cargo bench --bench idle -- ${quick[*]}) in the background; load $(load)"
  "$(exe idle)" --bench "${quick[@]}" >"$out/idle.txt" 2>&1 &
  idle_pid=$!
fi
run window_start
run push_latency
if [ -z "$sequential" ]; then
  if ! wait "$idle_pid"; then
    cat "$out/idle.txt"
    echo "the idle benchmark failed" >&2
    exit 1
  fi
  cat "$out/idle.txt"
else
  run idle
fi

echo
echo "results in $out"
