#!/usr/bin/env bash
# The project's main job (README). On a fresh machine it installs what is
# missing, builds in release mode and runs `harness compare`: both protocols
# (SAGA in both modes) on the same workloads, seeds and faults, interleaved and
# repeated on the local stack, then a report under results/<run-id>/ and a row
# in results/README.md. Extra arguments go to `harness compare` (for example
# --quick for the 3-minute version). Exits non-zero if any invariant broke.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

bash harness/scripts/setup.sh
cargo build --release --workspace --bins --quiet

exec "$root/target/release/harness" compare "$@"
