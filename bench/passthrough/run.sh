#!/usr/bin/env bash
# Passthrough overhead: the same kernel-only TCP ping-pong (pingpong.c over
# 127.0.0.1) timed with and without LD_PRELOAD=build/libbypass.so, in
# alternating runs of one session. Two modes:
#   inline  - one thread drives both ends: pure socket-call cost, no wake-ups
#   threads - an echo thread: a real ping-pong, dominated by wake-up latency
# Reports the median ns per round trip of each and the ratio (target: the
# preload within 2% of the kernel).
#
#   bench/passthrough/run.sh [MESSAGES [ROUNDS [SIZE [MODES]]]]
#   defaults: 200000 5 64 "inline threads"
#
# Not a test: numbers depend on the machine and its load (run it on an idle one).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$ROOT/build/libbypass.so"
N="${1:-200000}"
ROUNDS="${2:-5}"
SIZE="${3:-64}"
MODES="${4:-inline threads}"

[ -f "$LIB" ] || { echo "run.sh: $LIB missing: run scripts/setup.sh" >&2; exit 1; }
WORK="$(mktemp -d /tmp/bypass-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
gcc -O2 -pthread -o "$WORK/pingpong" "$HERE/pingpong.c"

# one WHO MODE -> ns per round trip of one run (WHO: kernel | preload)
one() {
  if [ "$1" = preload ]; then
    env LD_PRELOAD="$LIB" "$WORK/pingpong" "$N" "$SIZE" "$2"
  else
    env -u LD_PRELOAD "$WORK/pingpong" "$N" "$SIZE" "$2"
  fi | awk '{ print $4 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "pingpong: $N round trips of $SIZE bytes over 127.0.0.1, $ROUNDS alternating runs each"
for mode in $MODES; do
  one kernel "$mode" >/dev/null # warm-up
  for r in $(seq "$ROUNDS"); do
    # Alternate which goes first so drift in machine load hits both alike.
    if [ $((r % 2)) -eq 1 ]; then order="kernel preload"; else order="preload kernel"; fi
    for who in $order; do
      v="$(one "$who" "$mode")"
      echo "$v" >>"$WORK/$mode.$who"
      printf '  %-7s run %d %-8s %9.1f ns/rt\n' "$mode" "$r" "$who" "$v"
    done
  done
done

printf '\n%-8s %14s %14s %8s %8s\n' mode "kernel ns/rt" "preload ns/rt" ratio delta
for mode in $MODES; do
  k="$(median <"$WORK/$mode.kernel")"
  p="$(median <"$WORK/$mode.preload")"
  awk -v m="$mode" -v k="$k" -v p="$p" \
    'BEGIN { printf "%-8s %14.1f %14.1f %8.3f %+7.1f%%\n", m, k, p, p / k, (p / k - 1) * 100 }'
done
