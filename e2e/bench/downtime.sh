#!/usr/bin/env bash
# `make bench-downtime`: the cutover's downtime on a volume of 1,000,000 small files with 0.1% changed
# just before the cutover, delta passes against plain rsync passes (the plan's transfer.fullPasses), each
# the whole demo on real nodes with the release build of ferry (what ships; a debug build's delta pass
# is about twice as slow). Rounds alternate A B A B. Usage: downtime.sh ROUNDS [demo flags...]
# (docs/benchmarks.md, "Downtime on a million files").
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=$1
shift
ferry="${CARGO_TARGET_DIR:-$PWD/target}/release/ferry"
logs="${CARGO_TARGET_DIR:-$PWD/target}/bench-downtime"
mkdir -p "$logs"
summary=()
for round in $(seq 1 "$rounds"); do
  for passes in delta full; do
    flag=()
    [ "$passes" = full ] && flag=(--full-passes)
    log="$logs/round-$round-$passes.log"
    echo "bench-downtime: round $round, $passes passes (log: $log)"
    e2e/isolated.sh cargo run --offline --quiet -p ferry-sandbox --bin ferry-sandbox -- demo \
      --files 1000000 --timeout-seconds 1800 --ferry "$ferry" "${flag[@]}" "$@" > "$log" 2>&1 \
      || { tail -20 "$log"; echo "bench-downtime: the demo failed (log: $log)"; exit 1; }
    final=$(grep -o 'FinalSync *[0-9.]* s' "$log" | grep -o '[0-9.]* s' || echo '?')
    downtime=$(grep -o 'downtime: [0-9.]* s' "$log" | grep -o '[0-9.]* s' || echo '?')
    summary+=("| $round | $passes | $final | $downtime |")
    echo "  FinalSync $final, downtime $downtime"
  done
done
echo "| round | passes | FinalSync | downtime |"
echo "|---|---|---|---|"
printf '%s\n' "${summary[@]}"
