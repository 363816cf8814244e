#!/usr/bin/env bash
# Runs every benchmark in one go on this machine and keeps the output:
#
#   scripts/bench.sh            # the recorded run (about 25 minutes)
#   scripts/bench.sh --quick    # smaller sizes, 1-minute idle run (about 8 minutes)
#
# Installs what the benchmarks need first (the test cluster's Debian packages
# and kube-apiserver, as scripts/test.sh does, plus jq and GNU time for the
# CronJob baseline), prints the machine, builds the release binary, then runs
# the bench targets (benches/*.rs) one after the other:
#
#   schedule       schedule engine: next-window computations per second
#   window_start   window start -> every tag imported, 6/60/600 streams,
#                  daemon (import.concurrency 4 and 16) vs scripts/cronjob-baseline.sh
#   push_latency   push -> import in immediate mode: polling (5s, 30s) and push hook
#   idle           memory, CPU and API requests of an idle daemon over 10 minutes
#
# Output goes to target/bench-results/<UTC time>/ (one file per target, plus
# machine.txt); the daemons' raw JSON logs to target/bench-logs/.
# docs/benchmarks.md records a run and what the figures mean.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=(--quick) ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $arg (known: --quick)" >&2; exit 2 ;;
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

{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus:    $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
  echo "memory:  $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
  echo "kernel:  $(uname -sr)"
  echo "rustc:   $(rustc --version)"
  echo "kubectl: $(kubectl version --client 2>/dev/null | head -n1)"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
} | tee "$out/machine.txt"
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l >= 1.0) }'; then
  echo "warning: the 1-minute load is $load1; latency figures measured now are pessimistic" | tee -a "$out/machine.txt"
fi

echo "==> release binary"
cargo build --release --locked --bin import-scheduler
ls -l target/release/import-scheduler | tee -a "$out/machine.txt"
file target/release/import-scheduler 2>/dev/null | tee -a "$out/machine.txt" || true

echo "==> building the benchmarks"
cargo bench --locked --no-run

for target in schedule window_start push_latency idle; do
  echo "==> cargo bench --bench $target -- ${quick[*]}"
  started=$(date +%s)
  cargo bench --locked --bench "$target" -- "${quick[@]}" | tee "$out/$target.txt"
  echo "($target took $(( $(date +%s) - started )) s)" | tee -a "$out/$target.txt"
done

echo
echo "results in $out"
