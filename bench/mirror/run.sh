#!/usr/bin/env bash
# The kernel mirror's costs (issue 7), over a veth pair between two namespaces
# (byps-mirror-PID: bypv0 10.77.249.1, bypc-mirror-PID: bypv1 10.77.249.2):
#
#  1. neighbour change -> new MAC on the wire: a redis-server in the server namespace
#     (accelerated, and the kernel's for comparison) answers a redis-benchmark load; the
#     server's neighbour entry for the client is replaced (`ip neigh replace ... lladdr
#     NEW`) and the client side notes when the first frame addressed to NEW arrives
#     (AF_PACKET, CLOCK_MONOTONIC).  Reported: milliseconds from just before `ip` ran
#     (includes starting `ip`, ~1-3 ms) to that frame; median and max over N changes.
#  2. sockperf TCP 64 B ping-pong, both ends under the library, with the library before
#     the mirror (BASE_REV, default the merge-base with main, built in a scratch folder)
#     and with this tree's build/, alternating in one run: p50 / p99.9 half-RTT (usec).
#
#   bench/mirror/run.sh [CHANGES [ROUNDS [SECONDS]]]     defaults: 10 3 10
#
# Environment: BENCH_PARTS="neigh sockperf" (default both), BASE_REV.  Needs root.
# Not a test: numbers depend on the machine and its load.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$ROOT/build/libbypass.so"
CHANGES="${1:-10}" ROUNDS="${2:-3}" SECS="${3:-10}"
PARTS="${BENCH_PARTS:-neigh sockperf}"
SNS="byps-mirror-$$" CNS="bypc-mirror-$$"
SIF=bypv0 CIF=bypv1 SIP=10.77.249.1 CIP=10.77.249.2
RPORT=6379 SPORT=11111
PY=/usr/bin/python3

die() { echo "bench/mirror: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, XDP)"
[ -f "$LIB" ] || die "$LIB missing: build first"
WORK="$(mktemp -d /tmp/bypass-bench-mirror.XXXXXX)"
PIDS=()
# shellcheck source=../lib/netpair.sh
. "$ROOT/bench/lib/netpair.sh"
netpair_up

cat >"$WORK/srv.conf" <<CONF
interface = "$SIF";
rules = ( { action = "accelerate"; proto = "tcp"; port = $RPORT; },
          { action = "accelerate"; proto = "tcp"; port = $SPORT; } );
CONF
sed "s/$SIF/$CIF/" "$WORK/srv.conf" >"$WORK/cli.conf"

stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
real_mac() { ip -n "$CNS" -br link show "$CIF" | awk '{print $3}'; }

# neigh_part MODE(bypass|kernel) -> "median_ms max_ms" over CHANGES neighbour changes
neigh_part() {
  local mode="$1" pre=() real new i t0 t1 ts lat=()
  [ "$mode" = bypass ] && pre=(env "LD_PRELOAD=$LIB" "BYPASS_CONFIG=$WORK/srv.conf")
  ip netns exec "$SNS" "${pre[@]}" redis-server --port $RPORT --bind 0.0.0.0 --save '' \
    --appendonly no --protected-mode no --dir "$WORK" >"$WORK/redis-$mode.log" 2>&1 &
  local srv=$!
  PIDS+=("$srv")
  sleep 2
  ip netns exec "$CNS" redis-benchmark -h $SIP -p $RPORT -c 20 -n 100000000 -t ping \
    -q >/dev/null 2>&1 &
  local load=$!
  PIDS+=("$load")
  sleep 1
  real=$(real_mac)
  for i in $(seq "$CHANGES"); do
    new=$(printf '02:00:00:00:%02x:%02x' "$((i / 256))" "$((i % 256))")
    ip netns exec "$CNS" $PY "$HERE/first_frame.py" "$CIF" "$new" 5 >"$WORK/ts" 2>"$WORK/ff.err" &
    local ff=$!
    for _ in $(seq 50); do grep -q ready "$WORK/ff.err" && break; sleep 0.02; done
    t0=$(ip netns exec "$SNS" $PY "$HERE/neigh_set.py" $SIF $CIP "$new")
    wait "$ff"
    ts=$(cat "$WORK/ts")
    [ -n "$ts" ] && lat+=("$(awk -v a="$ts" -v b="$t0" 'BEGIN { printf "%.2f", (a - b) * 1000 }')")
    ip -n "$SNS" neigh replace $CIP lladdr "$real" dev $SIF nud stale
    sleep 1.5   # the load recovers (its lost segments are retransmitted)
  done
  stop "$load"; stop "$srv"
  [ "${#lat[@]}" -gt 0 ] || { echo "failed"; return; }
  printf '%s\n' "${lat[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%s %s (n=%d)\n", v[int((NR + 1) / 2)], v[NR], NR }'
}

# build_base -> path of the pre-mirror libbypass.so (built once in WORK)
build_base() {
  local rev="${BASE_REV:-$(git -C "$ROOT" merge-base HEAD main)}" lwip
  lwip=$(awk -F= '/^LWIP_DIR:/ { print $2 }' "$ROOT/build/CMakeCache.txt")
  mkdir -p "$WORK/base"
  git -C "$ROOT" archive "$rev" | tar -x -C "$WORK/base" || return 1
  cmake -S "$WORK/base" -B "$WORK/base/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLWIP_DIR="$lwip" >"$WORK/base-build.log" 2>&1 &&
    cmake --build "$WORK/base/build" -j2 >>"$WORK/base-build.log" 2>&1 || return 1
  echo "$WORK/base/build/libbypass.so"
}

# sockperf_part LIB -> "p50 p99.9"
sockperf_part() {
  local lib="$1" env_s env_c
  ip -n "$SNS" link set dev $SIF xdp off 2>/dev/null
  ip -n "$CNS" link set dev $CIF xdp off 2>/dev/null
  env_s=(env "LD_PRELOAD=$lib" "BYPASS_CONFIG=$WORK/srv.conf" BYPASS_SPIN_USEC=-1)
  env_c=(env "LD_PRELOAD=$lib" "BYPASS_CONFIG=$WORK/cli.conf" BYPASS_SPIN_USEC=-1)
  ip netns exec "$SNS" "${env_s[@]}" taskset -c 0 sockperf sr --tcp -i $SIP -p $SPORT \
    >"$WORK/sp-srv.log" 2>&1 &
  local srv=$!
  PIDS+=("$srv")
  sleep 2
  timeout -k 5 $((SECS + 40)) ip netns exec "$CNS" "${env_c[@]}" taskset -c 1 sockperf pp \
    --tcp -i $SIP -p $SPORT -m 64 -t "$SECS" >"$WORK/sp-cli.log" 2>&1
  stop "$srv"
  sed 's/\x1b\[[0-9;]*m//g' "$WORK/sp-cli.log" | awk '
    /percentile 50.000 =/ { p50 = $NF }
    /percentile 99.900 =/ { p999 = $NF }
    END { if (p50 == "" || p999 == "") print "failed"; else print p50, p999 }'
}

case " $PARTS " in *" neigh "*)
  echo "neighbour change -> first frame to the new MAC, ms (median max):"
  echo "  kernel redis-server:      $(neigh_part kernel)"
  echo "  accelerated redis-server: $(neigh_part bypass)"
esac
case " $PARTS " in *" sockperf "*)
  base=$(build_base) || die "cannot build the base revision (see $WORK/base-build.log)"
  echo "sockperf TCP 64 B half-RTT, both ends accelerated, usec (p50 p99.9):"
  for r in $(seq "$ROUNDS"); do   # the order alternates between rounds
    if [ $((r % 2)) -eq 1 ]; then
      echo "  round $r  before the mirror: $(sockperf_part "$base")"
      echo "  round $r  with the mirror:   $(sockperf_part "$LIB")"
    else
      echo "  round $r  with the mirror:   $(sockperf_part "$LIB")"
      echo "  round $r  before the mirror: $(sockperf_part "$base")"
    fi
  done
esac
