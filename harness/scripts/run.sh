#!/usr/bin/env bash
# The project's main job (README). On a fresh machine it installs what is
# missing, builds in release mode and brings up the local stack with the chosen
# protocol (default 2pc), supervising it until Ctrl-C. Extra arguments go to
# `harness up` (for example: --protocol saga --replicas 2 --detach).
#
# The comparison harness (`harness compare`, writing reports under results/)
# will replace `up` here once it lands.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

bash harness/scripts/setup.sh
cargo build --release --workspace --bins --quiet

args=("$@")
case " ${args[*]-} " in
  *" --protocol "*|*" --protocol="*) ;;
  *) args=(--protocol 2pc "${args[@]}") ;;
esac
exec "$root/target/release/harness" up "${args[@]}"
