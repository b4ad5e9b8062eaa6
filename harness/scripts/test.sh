#!/usr/bin/env bash
# The project's test command (README, .ci/run). On a fresh machine it installs
# what is missing, builds, starts real PostgreSQL, Kafka and Redis, runs every
# test of the workspace against them, and checks formatting, lints and docs.
#
# `test.sh <filter>` is the inner loop: the same set-up and build, then only
# the tests matching <filter> (passed to the test binaries), without the
# benchmark build, the compare, clippy and doc.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

bash harness/scripts/setup.sh

echo "== cargo fmt --check ($(date -u +%T))"
cargo fmt --all -- --check

# Tests run on release builds: the end-to-end tests drive whole stacks under
# load, and timing-sensitive checks (lock timeouts on a hot row, prepare
# deadlines) should measure the protocols, not an unoptimised build.
echo "== build (release) ($(date -u +%T))"
cargo build --release --workspace --bins --quiet

# Benchmarks are compiled, never timed, here: a speed is measured by
# `cargo bench` or `harness compare`, not asserted by a test.
if [[ $# -eq 0 ]]; then
  echo "== cargo bench --no-run ($(date -u +%T))"
  cargo bench --workspace --no-run --quiet
fi

# Infrastructure for the services' integration tests; each test makes its own
# database on it. Ports and the run directory stay clear of a developer's stack.
run_dir="$root/target/test-stack"
harness="$root/target/release/harness"
"$harness" down --run-dir "$run_dir" >/dev/null
trap '"$harness" down --run-dir "$run_dir" >/dev/null || true' EXIT
"$harness" up --protocol 2pc --infra-only --detach --run-dir "$run_dir" --port-base 28000 --partitions 2
eval "$("$harness" status --env --run-dir "$run_dir")"
export SAGA2PC_TEST_PG_URL="$SAGA2PC_ORDER_DATABASE_URL"
export SAGA2PC_TEST_REDIS_URL="$SAGA2PC_REDIS_URL"

echo "== cargo test ($(date -u +%T))"
cargo test --release --workspace -- "$@"
if [[ $# -gt 0 ]]; then
  exit 0
fi

# End to end: the comparison harness at CI size, on its own stacks. It exits
# non-zero if any invariant broke in any run, and must leave a report.
echo "== harness compare --quick ($(date -u +%T))"
ci_results="$root/target/ci-results"
rm -rf "$ci_results"
"$harness" compare --quick --run-id ci --out "$ci_results" --run-dir "$root/target/ci-compare" \
  --port-base 26000 --gateway-port 26500 --kafka-heap-mb 256
for file in report.md run.json charts/stress-latency-cdf.svg charts/timeline-kill-postgres-stock.svg; do
  test -s "$ci_results/ci/$file" || { echo "compare --quick left no $file"; exit 1; }
done
grep -q "| \[ci\](ci/report.md)" "$ci_results/README.md"
# The run's row in the table of runs and in the same-run ratios.
test "$(grep -c '| \[ci\](ci/report.md) |' "$ci_results/README.md")" -eq 2
# The report rebuilds byte for byte from run.json, and harness diff reads
# the run (a run beside itself: every call the same).
"$harness" report --check "$ci_results/ci"
"$harness" diff "$ci_results/ci" "$ci_results/ci" > /dev/null

# Lints and docs in the release profile: its build scripts (librdkafka's
# CMake build above all) already ran for the build above, where the dev
# profile would run them all again.
echo "== cargo clippy ($(date -u +%T))"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings

echo "== cargo doc ($(date -u +%T))"
RUSTDOCFLAGS="-D warnings" cargo doc --release --workspace --no-deps --quiet
echo "== done ($(date -u +%T))"
