#!/usr/bin/env bash
# THE test command (the README's and CI's, through .ci/run):
#   1. hack/install-deps.sh       etcd, protoc, busybox-static, a Docker engine
#   2. cargo fmt --check
#   3. cargo clippy --all-targets -D warnings
#   4. the tests: unit, integration (real etcd, real Docker) and doc tests,
#      with cargo-nextest when it is installed, else cargo test
#   5. hack/fuzz-api.sh: schemathesis against api/openapi.json and real agents
#   6. hack/page-check.sh: the status page in headless Chromium (screenshots
#      in target/page-check/)
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

# Doc tests first, so the suite's own summary is the last thing a reader sees.
# Then unit and integration tests of the library, binary and tests/ (not benches).
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
step doctests cargo test --doc "$@"
if cargo nextest --version >/dev/null 2>&1; then
  step tests bash -c 'set -o pipefail; cargo nextest run --lib --bins --tests --no-fail-fast "$@" 2>&1 | tee "$0"' "$log" "$@"
else
  step tests bash -c 'set -o pipefail; cargo test --lib --bins --tests --no-fail-fast "$@" 2>&1 | tee "$0"' "$log" "$@"
fi

# The API as its users meet it: fuzzed against its document, and the status
# page in a browser, each against real agents of the debug binary built here
# and an etcd of its own (about a minute together).
step build cargo build --bin berth
step fuzz-api hack/fuzz-api.sh
step page hack/page-check.sh

# One plain "N passed, N failed" line for the whole run.
passed=$(grep -oE '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed_n=$(grep -oE '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
if grep -q 'tests run:' "$log"; then
  # nextest prints one summary line; don't add per-binary counts.
  passed=$(grep -E 'tests run:' "$log" | tail -1 | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
  failed_n=$(grep -E 'tests run:' "$log" | tail -1 | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0)
fi

summary=$(printf '%s, ' "${results[@]}")
summary=${summary%, }
elapsed=$(($(date +%s) - started))
if [ "$failed" -eq 0 ]; then
  echo "hack/test.sh: PASS in ${elapsed}s: ${summary}"
else
  echo "hack/test.sh: FAIL in ${elapsed}s: ${summary}"
fi
echo "tests: ${passed:-0} passed, ${failed_n:-0} failed"
exit "$failed"
