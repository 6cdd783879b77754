#!/usr/bin/env bash
# THE test command (the README's and CI's, through .ci/run):
#   1. hack/install-deps.sh       etcd, protoc, busybox-static, a Docker engine
#   2. cargo fmt --check
#   3. cargo clippy --all-targets -D warnings
#   4. the tests: unit, integration (real etcd, real Docker) and doc tests,
#      with cargo-nextest when it is installed, else cargo test
# Every step runs even if an earlier one failed; the last line sums them up and
# the exit status is non-zero if any failed.
#
#   hack/test.sh [EXTRA TEST ARGS...]     e.g. hack/test.sh runtime::
#
# CI=true (set by CI) makes a missing etcd or Docker engine fail the tests
# instead of being reported as a set-up problem; it is passed through as is.
# Benchmarks (benches/, harness = false) are compiled by clippy but not run:
# `cargo bench --bench NAME` runs them.
set -uo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

started=$(date +%s)
results=()
failed=0

step() {
  local name="$1"
  shift
  echo "==> $name: $*" >&2
  local t0
  t0=$(date +%s)
  if "$@"; then
    results+=("$name ok ($(($(date +%s) - t0))s)")
  else
    results+=("$name FAILED ($(($(date +%s) - t0))s)")
    failed=1
  fi
}

step deps hack/install-deps.sh
step fmt cargo fmt --all -- --check
step clippy cargo clippy --all-targets -- -D warnings

# Unit and integration tests of the library, binary and tests/ (not benches).
if cargo nextest --version >/dev/null 2>&1; then
  step tests cargo nextest run --lib --bins --tests --no-fail-fast "$@"
  step doctests cargo test --doc "$@"
else
  step tests cargo test --lib --bins --tests --no-fail-fast "$@"
  step doctests cargo test --doc "$@"
fi

summary=$(printf '%s, ' "${results[@]}")
summary=${summary%, }
elapsed=$(($(date +%s) - started))
if [ "$failed" -eq 0 ]; then
  echo "hack/test.sh: PASS in ${elapsed}s: ${summary}"
else
  echo "hack/test.sh: FAIL in ${elapsed}s: ${summary}"
fi
exit "$failed"
