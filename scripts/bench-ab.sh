#!/usr/bin/env bash
# Runs the root crate's benches of an older build (A) beside this checkout's (B), alternating
# A B A B in one sitting: this machine's speed drifts by half from hour to hour, so only figures of
# the same sitting compare. Each run's output goes to target/bench-ab/<bench>.<A|B>.<round>.txt.
#
#   scripts/bench-ab.sh BASE_REV [ROUNDS] [BENCH...]
#   scripts/bench-ab.sh c65a7b3 2 partner_edge webhook_delivery telemetry_ingest
#
# The services must be up (scripts/test.sh starts them). Both builds are release builds in their
# own target directories, built one after the other (two cores).
set -euo pipefail

base=${1:?usage: scripts/bench-ab.sh BASE_REV [ROUNDS] [BENCH...]}
rounds=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(partner_edge webhook_delivery telemetry_ingest)

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/target/bench-ab
source_a=$out/base-source
mkdir -p "$out"

if [ -d "$source_a" ]; then
  git -C "$source_a" checkout --quiet --detach "$base"
else
  git -C "$root" worktree add --quiet --detach "$source_a" "$base"
fi

# Builds the benches of one source tree and prints "name executable" for each.
executables() {
  (cd "$1" && CARGO_TARGET_DIR=$2 cargo bench --no-run --message-format=json) | python3 -c '
import json, sys
for line in sys.stdin:
    artifact = json.loads(line)
    if artifact.get("reason") == "compiler-artifact" and artifact.get("executable") and "bench" in artifact["target"]["kind"]:
        print(artifact["target"]["name"], artifact["executable"])
'
}

declare -A a b
while read -r name path; do a[$name]=$path; done < <(executables "$source_a" "$out/target-a")
while read -r name path; do b[$name]=$path; done < <(executables "$root" "$root/target")

for bench in "${benches[@]}"; do
  for round in $(seq 1 "$rounds"); do
    for side in A B; do
      if [ "$side" = A ]; then exe=${a[$bench]:-}; dir=$source_a; else exe=${b[$bench]:-}; dir=$root; fi
      [ -n "$exe" ] || { echo "no bench $bench in build $side" >&2; exit 1; }
      echo "== $bench $side round $round ($(date -u +%H:%M:%S))"
      (cd "$dir" && "$exe" --bench) 2>&1 | tee "$out/$bench.$side.$round.txt"
    done
  done
done
