#!/usr/bin/env bash
# Accelerated UDP against the kernel, in one run, over a veth pair between two network
# namespaces (byps-budp-PID: bypv0 10.77.249.1, bypc-budp-PID: bypv1 10.77.249.2):
#
#   sockperf UDP ping-pong, 64 B, half-RTT p50 / p99 / p99.9 (usec):
#     kernel blocking   sockperf sr -i SIP / sockperf pp -i SIP -m 64
#     kernel busy-poll  the same with a feed file, -F r --nonblocked (both ends spin)
#     bypass            the blocking command, both ends under LD_PRELOAD=build/libbypass.so
#     bypass-pmd        the same on DPDK's af_xdp PMD (BYPASS_RX_RING=0) instead of the
#                       library's own AF_XDP socket: its 2,048-buffer ring, its rx burst
#     raw               the floor: no stack at either end, both on af_xdp (byp-reflect
#                       turning frames around, byp-reflect --ping sending them), spinning
#   receive rate: the highest rate of a ladder (64 B datagrams, 1 and 32 multicast groups,
#     tests/integration/accel/udp_feed.c's payload, sent by udp_feed's kernel socket in
#     UDP_SEGMENT sends of BENCH_BATCH datagrams, by the same in sendmmsg batches, or as raw
#     frames by byp-reflect --feed: BENCH_SENDER) at which the receiver (epoll over one
#     socket per group, SO_RCVBUF 4 MB:
#     BENCH_RCVBUF) loses nothing over SECONDS, kernel receiver against bypass.  A step the
#     sender could not offer (its achieved rate below 97 % of the step) ends the ladder and
#     is named in the output: the rate is then the sender's limit, not the receiver's.
#     Receivers: kernel, bypass, bypass-pmd (BENCH_UDP_RATE_MODES).
#   multicast one-way latency: 32 groups at 10,000 datagrams/s for SECONDS (one datagram
#     per send); the sender's CLOCK_REALTIME in each datagram against the receiver's clock
#     on receipt (same host): p50 / p99 / p99.9 (usec), kernel receiver against bypass
#
# Server pinned to CPU 0, client to CPU 1.  A bypass run whose traffic went through the
# server namespace's kernel UDP (its counters moved) is reported "not-bypassed".
#
#   bench/udp/run.sh [SECONDS [ROUNDS]]        defaults: 10 3
#
# Environment: BENCH_SPIN_USEC (BYPASS_SPIN_USEC of the bypass sockperf runs, default -1:
# blocking calls spin, as the busy-poll column does), BENCH_FEED_SPIN_USEC (that of the
# bypass feed receivers, default 100, the library's default: a receiver that spins forever
# loses its CPU to other jobs for whole time slices, and the datagrams meanwhile overflow
# the NIC ring; one that sleeps is woken at once), BENCH_LOG (BYPASS_LOG), BENCH_RATES (the
# ladder, datagrams/s, default "50000 100000 200000 300000 400000 600000 800000 1000000
# 1250000 1500000"), BENCH_BATCH (datagrams per sendmmsg of the ladder's sender, default
# 32), BENCH_SENDER (gso, the default: udp_feed's kernel socket, each batch one send of
# one group's datagrams that the kernel cuts apart, UDP_SEGMENT, the groups taking turns
# by batch: about 1,000,000/s here, twice what the others offer; raw: `byp-reflect --feed`,
# raw frames through AF_XDP in the client namespace; kernel: udp_feed's kernel socket with
# sendmmsg batches, round-robin by datagram), BENCH_UDP_PARTS (any of "sockperf rate
# latency", default all),
# BENCH_UDP_RATE_MODES (the ladder's receivers, default "kernel bypass bypass-pmd"), BENCH_LIB (the
# library, default build/libbypass.so), BENCH_RX_WRAP (a command prefix for the feed
# receiver, e.g. "perf stat -e raw_syscalls:sys_enter -o FILE --"), BENCH_OUT=DIR (also
# write DIR/udp.tsv: bench, mode, round, figures or verdict, the command; and the sockperf
# --full-log samples DIR/sockperf-udp-MODE-rROUND.csv).  Needs root.  Not a test.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="${BENCH_LIB:-$ROOT/build/libbypass.so}"
SECS="${1:-10}"
ROUNDS="${2:-3}"
RATES="${BENCH_RATES:-50000 100000 200000 300000 400000 600000 800000 1000000 1250000 1500000}"
PARTS_UDP="${BENCH_UDP_PARTS:-sockperf rate latency}"
RATE_MODES="${BENCH_UDP_RATE_MODES:-kernel bypass bypass-pmd}"
BATCH="${BENCH_BATCH:-32}"
SNS="byps-budp-$$" CNS="bypc-budp-$$"
SIF=bypv0 CIF=bypv1 SIP=10.77.249.1 CIP=10.77.249.2
SPORT=11111 FPORT=7700 GBASE=239.9.3.1
SRV_CPU=0 CLI_CPU=1
QUIET=100   # kernel UDP datagrams a bypass run may show in the server namespace
# The feed receivers' SO_RCVBUF, as feed handlers set it (the kernel doubles it, within
# net.core.rmem_max): a stall of the receiver is absorbed by the socket queues on both.
RCVBUF="${BENCH_RCVBUF:-4194304}"

die() { echo "bench/udp: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, XDP)"
for t in ip sockperf gcc taskset timeout awk; do
  command -v "$t" >/dev/null || die "$t not found (bash scripts/setup.sh)"
done
[ -f "$LIB" ] || die "$LIB missing: build first"

WORK="$(mktemp -d /tmp/bypass-bench-udp.XXXXXX)"
PIDS=()
# shellcheck source=../lib/netpair.sh
. "$ROOT/bench/lib/netpair.sh"
netpair_up
FEED="$WORK/udp_feed"
gcc -O2 -o "$FEED" "$ROOT/tests/integration/accel/udp_feed.c" || die "cannot build udp_feed"

write_conf() { # FILE INTERFACE
  cat >"$1" <<EOF
interface = "$2";
backend = "af_xdp";
rules = (
  { action = "accelerate"; proto = "udp"; port = $SPORT; },
  { action = "accelerate"; proto = "udp"; port = $FPORT; addr = "239.9.3.0/24"; }
);
EOF
}
write_conf "$WORK/srv.conf" "$SIF"
write_conf "$WORK/cli.conf" "$CIF"
echo "U:$SIP:$SPORT" >"$WORK/feed"

# ns_cmd NS CONF|- CPU -> NSCMD (preloaded when CONF is a file, BYPASS_SPIN_USEC=$SPIN,
# BYPASS_RX_RING=$RXRING when set)
SPIN=-1 RXRING=
ns_cmd() {
  local ns="$1" conf="$2" cpu="$3"
  NSCMD=(ip netns exec "$ns" env -u LD_PRELOAD)
  if [ "$conf" != - ]; then
    NSCMD+=("LD_PRELOAD=$LIB" "BYPASS_CONFIG=$conf" "BYPASS_SPIN_USEC=$SPIN")
    [ -n "$RXRING" ] && NSCMD+=("BYPASS_RX_RING=$RXRING")
    [ -n "${BENCH_LOG:-}" ] && NSCMD+=("BYPASS_LOG=$BENCH_LOG")
  fi
  NSCMD+=(taskset -c "$cpu")
}

udp_dgrams() { # NS -> kernel UDP InDatagrams + OutDatagrams of that namespace
  ip netns exec "$1" awk '/^Udp:/ { if (h) { print $2 + $5; exit } h = 1 }' /proc/net/snmp
}

reset_xdp() {
  ip -n "$SNS" link set dev "$SIF" xdp off 2>/dev/null
  ip -n "$CNS" link set dev "$CIF" xdp off 2>/dev/null
}

stop_pid() {
  kill "$1" 2>/dev/null
  local i
  for i in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  local p rest=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
  PIDS=("${rest[@]}")
}

verdict() { # BEFORE -> ok | not-bypassed
  local d=$(($(udp_dgrams "$SNS") - $1))
  if [ "$d" -gt "$QUIET" ]; then
    echo "bench/udp: bypass run went through the server's kernel (+$d UDP datagrams)" >&2
    echo not-bypassed
  else
    echo ok
  fi
}

# sockperf_run MODE -> "p50 p99 p99.9" | failed | not-bypassed
sockperf_run() {
  local mode="$1" log="$WORK/sockperf-$1" sconf=- cconf=- flog=()
  local args=(-i "$SIP" -p "$SPORT")
  reset_xdp
  RXRING=
  case "$mode" in
    busy) args=(-f "$WORK/feed" -F r --nonblocked) ;;
    bypass) sconf="$WORK/srv.conf" cconf="$WORK/cli.conf" ;;
    bypass-pmd) sconf="$WORK/srv.conf" cconf="$WORK/cli.conf" RXRING=0 ;;
  esac
  SPIN="${BENCH_SPIN_USEC:--1}"
  ns_cmd "$SNS" "$sconf" "$SRV_CPU"
  local srv=("${NSCMD[@]}" sockperf sr "${args[@]}")
  "${srv[@]}" >"$log.srv" 2>&1 &
  local spid=$!
  PIDS+=("$spid")
  sleep 2
  local s0
  s0=$(udp_dgrams "$SNS")
  ns_cmd "$CNS" "$cconf" "$CLI_CPU"
  [ -n "${BENCH_OUT:-}" ] && flog=(--full-log "$BENCH_OUT/sockperf-udp-$mode-r$ROUND.csv")
  echo "server: ${srv[*]} | client: ${NSCMD[*]} sockperf pp ${args[*]} -m 64 -t $SECS ${flog[*]}" >"$WORK/last_cmd"
  timeout -k 5 $((SECS + 40)) "${NSCMD[@]}" sockperf pp "${args[@]}" -m 64 -t "$SECS" \
    "${flog[@]}" >"$log.cli" 2>&1
  local rc=$? v=ok
  [ "$sconf" != - ] && v=$(verdict "$s0")
  stop_pid "$spid"
  if [ "$rc" -ne 0 ]; then
    echo "bench/udp: sockperf $mode exited $rc" >&2
    tail -3 "$log.cli" "$log.srv" >&2
    echo failed; return
  fi
  [ "$v" = ok ] || { echo "$v"; return; }
  sed 's/\x1b\[[0-9;]*m//g' "$log.cli" | awk '
    /percentile 50.000 =/ { p50 = $NF }
    /percentile 99.000 =/ { p99 = $NF }
    /percentile 99.900 =/ { p999 = $NF }
    END { if (p50 == "" || p99 == "" || p999 == "") print "failed"; else print p50, p99, p999 }'
}

# raw_run -> "p50 p99 p99.9" | failed | not-bypassed: the floor, no stack at either end:
# byp-reflect turning frames around in the server namespace, byp-reflect --ping sending raw
# frames in the client namespace, both on af_xdp, both spinning.
raw_run() {
  local log="$WORK/raw" reflect="$ROOT/build/nicbackend/byp-reflect"
  [ -x "$reflect" ] || { echo failed; return; }
  reset_xdp
  local mac
  mac=$(ip -n "$SNS" link show "$SIF" | awk '/link\/ether/ { print $2 }')
  local srv=(ip netns exec "$SNS" taskset -c "$SRV_CPU" "$reflect" -i "$SIF" -p "$SPORT" -t $((SECS + 60)))
  "${srv[@]}" >"$log.srv" 2>&1 &
  local spid=$! i
  PIDS+=("$spid")
  for i in $(seq 100); do grep -q '^ready' "$log.srv" && break; sleep 0.1; done
  local s0
  s0=$(udp_dgrams "$SNS")
  local n=$((SECS * 20000))
  local cli=(ip netns exec "$CNS" taskset -c "$CLI_CPU" "$reflect" -i "$CIF" -p "$SPORT" --ping "$SIP"
             --peer-mac "$mac" -n "$n" -w 1000)
  echo "server: ${srv[*]} | client: ${cli[*]}" >"$WORK/last_cmd"
  timeout -k 5 $((SECS + 60)) "${cli[@]}" >"$log.cli" 2>&1
  local rc=$? v
  v=$(verdict "$s0")
  stop_pid "$spid"
  if [ "$rc" -ne 0 ]; then
    echo "bench/udp: raw ping-pong exited $rc" >&2
    tail -3 "$log.cli" "$log.srv" >&2
    echo failed; return
  fi
  [ "$v" = ok ] || { echo "$v"; return; }
  awk '/^half-RTT us:/ { print $4, $6, $8; f = 1 } END { if (!f) print "failed" }' "$log.cli"
}

# feed_run MODE GROUPS RATE SECONDS BATCH -> the receiver's JSON line, with the rate the
# sender achieved ("offered") | failed | not-bypassed
feed_run() {
  local mode="$1" ng="$2" rate="$3" secs="$4" batch="$5" log="$WORK/feed-$1-$2-$3" conf=-
  local count=$((rate * secs))
  reset_xdp
  RXRING=
  [ "$mode" = bypass ] && conf="$WORK/srv.conf"
  [ "$mode" = bypass-pmd ] && conf="$WORK/srv.conf" RXRING=0
  SPIN="${BENCH_FEED_SPIN_USEC:-100}" ns_cmd "$SNS" "$conf" "$SRV_CPU"
  # BENCH_RX_WRAP: a command the receiver runs under (say "perf stat -e ... -o FILE --").
  local rx=("${NSCMD[@]}" ${BENCH_RX_WRAP:-} "$FEED" recv "$GBASE" "$ng" "$FPORT" "$count" "$RCVBUF" 0 "$SIP")
  "${rx[@]}" >"$log.rx" 2>&1 &
  local rpid=$! i
  PIDS+=("$rpid")
  for i in $(seq 300); do grep -q '^ready' "$log.rx" && break; sleep 0.1; done
  local s0
  s0=$(udp_dgrams "$SNS")
  ns_cmd "$CNS" - "$CLI_CPU"
  local tx=("${NSCMD[@]}" "$FEED" send "$GBASE" "$ng" "$FPORT" "$count" "$rate" "$CIP" "$batch")
  # The ladder's sender (BENCH_SENDER): gso by default, the one that offers the most.
  [ "${BENCH_SENDER:-gso}" = gso ] && [ "$batch" -gt 1 ] && tx+=(gso)
  [ "${BENCH_SENDER:-gso}" = raw ] && [ "$batch" -gt 1 ] &&
    tx=("${NSCMD[@]}" "$ROOT/build/nicbackend/byp-reflect" -i "$CIF" -p "$FPORT" --feed "$GBASE"
        -g "$ng" -n "$count" -r "$rate")
  echo "receiver: ${rx[*]} | sender: ${tx[*]}" >"$WORK/last_cmd"
  timeout -k 5 $((secs * 4 + 60)) "${tx[@]}" >"$log.tx" 2>&1
  for i in $(seq $((secs * 10 + 200))); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
  local v=ok
  [ "$conf" != - ] && v=$(verdict "$s0")
  stop_pid "$rpid"
  [ "$v" = ok ] || { echo "$v"; return; }
  local offered
  offered=$(sed -n 's/^sent [0-9]* in [0-9.]* s (\([0-9]*\)\/s.*/\1/p' "$log.tx")
  grep '^{' "$log.rx" | tail -1 | sed "s/}\$/, \"offered\": ${offered:-0}}/" | grep . || echo failed
}

jget() { sed -n "s/.*\"$1\": \(-\{0,1\}[0-9]*\).*/\1/p"; }

record() { # BENCH MODE FIGURES: with the command of the last run (the runs are subshells)
  [ -n "${BENCH_OUT:-}" ] || return 0
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$ROUND" "$3" "$(cat "$WORK/last_cmd" 2>/dev/null || echo -)" \
    >>"$BENCH_OUT/udp.tsv"
}

echo "bench/udp: $ROUNDS rounds of ${SECS}s; server cpu $SRV_CPU, client cpu $CLI_CPU" >&2
for r in $(seq "$ROUNDS"); do
  ROUND=$r
  for mode in kernel busy bypass bypass-pmd raw; do
    [[ " $PARTS_UDP " == *" sockperf "* ]] || break
    echo "bench/udp: round $r sockperf udp $mode" >&2
    if [ "$mode" = raw ]; then res=$(raw_run); else res=$(sockperf_run "$mode"); fi
    echo "$res" >>"$WORK/sp-$mode"
    record sockperf-udp "$mode" "$res"
  done
  for ng in 1 32; do
    [[ " $PARTS_UDP " == *" rate "* ]] || break
    for mode in $RATE_MODES; do
      best=0
      for rate in $RATES; do
        echo "bench/udp: round $r rate $ng groups $mode $rate/s" >&2
        res=$(feed_run "$mode" "$ng" "$rate" "$SECS" "$BATCH")
        lost=$(echo "$res" | jget lost)
        recvd=$(echo "$res" | jget received)
        offered=$(echo "$res" | jget offered)
        echo "bench/udp:   $res" >&2
        # A rate the sender could not offer (within 3 %) is no verdict on the receiver.
        if [ -n "$offered" ] && [ "$offered" -lt $((rate * 97 / 100)) ]; then
          echo "bench/udp:   the sender reached only $offered/s: the ladder stops here" >&2
          echo "$rate" >>"$WORK/senderlimit-$ng-$mode"
          break
        fi
        [ -n "$lost" ] && [ "$lost" = 0 ] && [ "$recvd" = $((rate * SECS)) ] || break
        best=$rate
      done
      record "udp-rate-g$ng" "$mode" "$best"
      echo "$best" >>"$WORK/rate-$ng-$mode"
    done
  done
  for mode in kernel bypass; do
    [[ " $PARTS_UDP " == *" latency "* ]] || break
    echo "bench/udp: round $r multicast latency $mode" >&2
    res=$(feed_run "$mode" 32 10000 "$SECS" 1)
    fig=$(echo "$res" | awk '/^\{/ { for (i = 1; i <= NF; i++) v[$i] = $(i + 1) }
      END { gsub(/[,}]/, "", v["\"lat_p50_ns\":"]); gsub(/[,}]/, "", v["\"lat_p99_ns\":"]);
            gsub(/[,}]/, "", v["\"lat_p999_ns\":"]); gsub(/[,}]/, "", v["\"lost\":"])
            if (v["\"lat_p50_ns\":"] == "") { print "failed"; exit }
            printf "%.1f %.1f %.1f %s\n", v["\"lat_p50_ns\":"] / 1000, v["\"lat_p99_ns\":"] / 1000,
                   v["\"lat_p999_ns\":"] / 1000, v["\"lost\":"] }')
    [ "$res" = not-bypassed ] && fig=not-bypassed
    echo "$fig" >>"$WORK/lat-$mode"
    record mc-latency "$mode" "$fig"
  done
done

median() { # FILE COLUMN
  awk -v c="$2" '
    $1 ~ /^[0-9.]+$/ { v[++n] = $c; next }
    why == "" { why = $1 }
    END {
      if (n == 0) { print (why == "" ? "failed" : why); exit }
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }' "$1" 2>/dev/null || echo failed
}

echo
echo "sockperf UDP ping-pong, 64 B, half-RTT usec, median of $ROUNDS runs of ${SECS}s"
printf '%-7s %16s %17s %10s %11s %16s\n' metric "kernel blocking" "kernel busy-poll" bypass \
  bypass-pmd "raw af_xdp floor"
for c in "1 p50" "2 p99" "3 p99.9"; do
  set -- $c
  printf '%-7s %16s %17s %10s %11s %16s\n' "$2" "$(median "$WORK/sp-kernel" "$1")" \
    "$(median "$WORK/sp-busy" "$1")" "$(median "$WORK/sp-bypass" "$1")" \
    "$(median "$WORK/sp-bypass-pmd" "$1")" "$(median "$WORK/sp-raw" "$1")"
done
echo
echo "highest receive rate without loss over ${SECS}s (64 B datagrams/s; ladder: $RATES)"
printf '%-9s %12s %12s %12s\n' groups kernel bypass bypass-pmd
for ng in 1 32; do
  printf '%-9s %12s %12s %12s\n' "$ng" "$(median "$WORK/rate-$ng-kernel" 1)" \
    "$(median "$WORK/rate-$ng-bypass" 1)" "$(median "$WORK/rate-$ng-bypass-pmd" 1)"
done
for f in "$WORK"/senderlimit-*; do
  [ -f "$f" ] && echo "(sender-limited ladders, groups-mode: ${f##*/senderlimit-} at $(tr '\n' ' ' <"$f"))"
done
echo
echo "multicast one-way latency, 32 groups at 10,000/s, usec (median of $ROUNDS runs)"
printf '%-7s %12s %12s\n' metric kernel bypass
for c in "1 p50" "2 p99" "3 p99.9" "4 lost"; do
  set -- $c
  printf '%-7s %12s %12s\n' "$2" "$(median "$WORK/lat-kernel" "$1")" "$(median "$WORK/lat-bypass" "$1")"
done
