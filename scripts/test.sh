#!/usr/bin/env bash
# The project's test command: installs what the tests need (Debian packages,
# a kube-apiserver built once per machine), then runs formatting, lint and
# every test. Works on a fresh Debian bookworm machine with a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> test dependencies"
KUBE_APISERVER=$(test-cluster/scripts/install-deps.sh | tail -n1)
export KUBE_APISERVER

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"
