#!/usr/bin/env bash
# Accelerated TCP against the kernel, in one run, over a veth pair between two network
# namespaces (byps-bench-PID: bypv0 10.77.250.1, bypc-bench-PID: bypv1 10.77.250.2):
#
#   sockperf TCP ping-pong, 64 B, half-RTT p50 / p99 / p99.9 (usec):
#     kernel blocking   sockperf sr --tcp / sockperf pp --tcp -m 64
#     kernel busy-poll  the same with a feed file, -F recvfrom --nonblocked (both ends spin)
#     bypass            the blocking command, both ends under LD_PRELOAD=build/libbypass.so
#   redis-benchmark -P1 and -P16 (SET, GET; requests/s), kernel and both ends under the library.
#
# Server pinned to CPU 0, client to CPU 1 (taskset).  ROUNDS rounds alternate the modes;
# medians are printed.  A bypass run that fails, hangs or whose traffic went through the
# kernel (the namespaces' kernel TCP counters moved) is reported as "failed" or
# "not-bypassed".
#
#   bench/tcp/run.sh [SECONDS [ROUNDS [REQUESTS]]]       defaults: 10 3 200000
#
# Environment: BENCH_SPIN_USEC sets BYPASS_SPIN_USEC for the bypass runs (default -1, the
# latency profile: blocking calls spin, as the kernel busy-poll column does; 100 is the
# library's default, which sleeps after 100 us); BENCH_LOG sets
# BYPASS_LOG.  For bench/run.sh: BENCH_OUT=DIR also writes DIR/tcp.tsv (one line per run:
# bench, mode, round, figures or verdict, the command) and each sockperf client's
# --full-log DIR/sockperf-MODE-rROUND.csv; BENCH_PARTS="sockperf redis" (the default)
# selects the parts to run.  Needs root.  Not a test: numbers depend on the machine and its load.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$ROOT/build/libbypass.so"
SECONDS_PER_RUN="${1:-10}"
ROUNDS="${2:-3}"
REQUESTS="${3:-200000}"
SNS="byps-bench-$$" CNS="bypc-bench-$$"
SIF=bypv0 CIF=bypv1 SIP=10.77.250.1 CIP=10.77.250.2
SPORT=11111 RPORT=6379
SRV_CPU=0 CLI_CPU=1
# Kernel TCP segments a bypass run may show in either namespace (setup, stray ACKs).
QUIET=200

die() { echo "bench/tcp: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, XDP)"
for t in ip sockperf redis-server redis-benchmark taskset timeout awk; do
  command -v "$t" >/dev/null || die "$t not found (bash scripts/setup.sh)"
done
[ -f "$LIB" ] || die "$LIB missing: run scripts/setup.sh"

WORK="$(mktemp -d /tmp/bypass-bench-tcp.XXXXXX)"
PIDS=()
# shellcheck source=../lib/netpair.sh
. "$ROOT/bench/lib/netpair.sh"
netpair_up

write_conf() { # FILE INTERFACE
  cat >"$1" <<EOF
interface = "$2";
backend = "af_xdp";
rules = (
  { action = "accelerate"; proto = "tcp"; port = $SPORT; },
  { action = "accelerate"; proto = "tcp"; port = $RPORT; }
);
EOF
}
write_conf "$WORK/srv.conf" "$SIF"
write_conf "$WORK/cli.conf" "$CIF"
echo "T:$SIP:$SPORT" >"$WORK/feed"

# --- helpers --------------------------------------------------------------------------

# ns_cmd NS CONF|- CPU -> NSCMD: the argv prefix that runs a command in NS pinned to CPU,
# preloaded when CONF is a file (only the command is preloaded, not ip or env).
ns_cmd() {
  local ns="$1" conf="$2" cpu="$3"
  NSCMD=(ip netns exec "$ns" env -u LD_PRELOAD)
  if [ "$conf" != - ]; then
    NSCMD+=("LD_PRELOAD=$LIB" "BYPASS_CONFIG=$conf")
    NSCMD+=("BYPASS_SPIN_USEC=${BENCH_SPIN_USEC:--1}")
    [ -n "${BENCH_LOG:-}" ] && NSCMD+=("BYPASS_LOG=$BENCH_LOG")
  fi
  NSCMD+=(taskset -c "$cpu")
}

tcp_segs() { # NS -> kernel TCP InSegs + OutSegs of that namespace
  ip netns exec "$1" awk '/^Tcp:/ { if (h) { print $11 + $12; exit } h = 1 }' /proc/net/snmp
}

wait_listen() { # PORT PID -> 0 when something listens on PORT in the server namespace
  local i
  for i in $(seq 150); do
    kill -0 "$2" 2>/dev/null || return 1
    ip netns exec "$SNS" ss -Hltn "sport = :$1" | grep -q . && return 0
    sleep 0.1
  done
  return 1
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

reset_xdp() { # leftovers of a crashed bypass run would steer the kernel runs' traffic
  ip -n "$SNS" link set dev "$SIF" xdp off 2>/dev/null
  ip -n "$CNS" link set dev "$CIF" xdp off 2>/dev/null
}

# start_server MODE LOG cmd... -> sets SERVER_PID; MODE bypass preloads the server.
start_server() {
  local mode="$1" log="$2" conf=-
  shift 2
  [ "$mode" = bypass ] && conf="$WORK/srv.conf"
  ns_cmd "$SNS" "$conf" "$SRV_CPU"
  SRV_CMD=("${NSCMD[@]}" "$@")
  "${NSCMD[@]}" "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}

# Checks after a bypass run that its traffic bypassed both kernels; prints "ok" or
# "not-bypassed".
bypass_verdict() { # SRV_BEFORE CLI_BEFORE
  local ds=$(($(tcp_segs "$SNS") - $1)) dc=$(($(tcp_segs "$CNS") - $2))
  if [ "$ds" -gt "$QUIET" ] || [ "$dc" -gt "$QUIET" ]; then
    echo "bench/tcp: bypass run went through the kernel (TCP segments: server ns +$ds," \
         "client ns +$dc)" >&2
    echo not-bypassed
  else
    echo ok
  fi
}

lib_lines() { # LOG_PREFIX: the library's messages of a run, for the reader
  grep -h '^bypass:' "$1".* 2>/dev/null | head -5 | sed 's/^/bench\/tcp:   /' >&2
}

# sockperf_run MODE -> "p50 p99 p99.9" (usec, half RTT), or "failed" / "not-bypassed"
sockperf_run() {
  local mode="$1" log="$WORK/sockperf-$1" srv=(--tcp -i "$SIP" -p "$SPORT") cconf=-
  local cli=(--tcp -i "$SIP" -p "$SPORT") flog=()
  reset_xdp
  case "$mode" in
    busy) srv=(-f "$WORK/feed" -F r --nonblocked); cli=("${srv[@]}") ;;
    bypass) cconf="$WORK/cli.conf" ;;
  esac
  start_server "$mode" "$log.srv" sockperf sr "${srv[@]}"
  if ! wait_listen "$SPORT" "$SERVER_PID"; then
    stop_pid "$SERVER_PID"; echo failed; return
  fi
  [ "$mode" = bypass ] && sleep 1
  local s0 c0
  s0=$(tcp_segs "$SNS") c0=$(tcp_segs "$CNS")
  ns_cmd "$CNS" "$cconf" "$CLI_CPU"
  [ -n "${BENCH_OUT:-}" ] && flog=(--full-log "$BENCH_OUT/sockperf-$mode-r$ROUND.csv")
  LAST_CMD="server: ${SRV_CMD[*]} | client: ${NSCMD[*]} sockperf pp ${cli[*]} -m 64 -t $SECONDS_PER_RUN ${flog[*]}"
  timeout -k 5 $((SECONDS_PER_RUN + 40)) "${NSCMD[@]}" sockperf pp "${cli[@]}" -m 64 -t "$SECONDS_PER_RUN" \
    "${flog[@]}" >"$log.cli" 2>&1
  local rc=$? verdict=ok
  [ "$mode" = bypass ] && verdict=$(bypass_verdict "$s0" "$c0")
  stop_pid "$SERVER_PID"
  if [ "$rc" -ne 0 ]; then
    echo "bench/tcp: sockperf $mode exited $rc; last lines:" >&2
    tail -3 "$log.cli" "$log.srv" >&2
    echo failed; return
  fi
  [ "$verdict" = ok ] || { lib_lines "$log"; echo "$verdict"; return; }
  sed 's/\x1b\[[0-9;]*m//g' "$log.cli" | awk '
    /percentile 50.000 =/ { p50 = $NF }
    /percentile 99.000 =/ { p99 = $NF }
    /percentile 99.900 =/ { p999 = $NF }
    END { if (p50 == "" || p99 == "" || p999 == "") print "failed"; else print p50, p99, p999 }'
}

# redis_run MODE PIPELINE -> "SET_rps GET_rps", or "failed" / "not-bypassed"
redis_run() {
  local mode="$1" pipe="$2" log="$WORK/redis-$1-$2" cconf=-
  reset_xdp
  [ "$mode" = bypass ] && cconf="$WORK/cli.conf"
  start_server "$mode" "$log.srv" redis-server --port "$RPORT" --bind 0.0.0.0 --save '' \
    --appendonly no --protected-mode no --dir "$WORK" --loglevel warning
  if ! wait_listen "$RPORT" "$SERVER_PID"; then
    stop_pid "$SERVER_PID"; echo failed; return
  fi
  [ "$mode" = bypass ] && sleep 1
  local s0 c0
  s0=$(tcp_segs "$SNS") c0=$(tcp_segs "$CNS")
  ns_cmd "$CNS" "$cconf" "$CLI_CPU"
  LAST_CMD="server: ${SRV_CMD[*]} | client: ${NSCMD[*]} redis-benchmark -h $SIP -p $RPORT -n $REQUESTS -c 50 -P $pipe -t set,get --csv"
  timeout -k 5 180 "${NSCMD[@]}" redis-benchmark -h "$SIP" -p "$RPORT" \
    -n "$REQUESTS" -c 50 -P "$pipe" -t set,get --csv >"$log.cli" 2>"$log.err"
  local rc=$? verdict=ok
  [ "$mode" = bypass ] && verdict=$(bypass_verdict "$s0" "$c0")
  stop_pid "$SERVER_PID"
  if [ "$rc" -ne 0 ]; then
    echo "bench/tcp: redis-benchmark $mode -P$pipe exited $rc" >&2
    tail -3 "$log.err" "$log.srv" >&2
    lib_lines "$log"
    echo failed; return
  fi
  [ "$verdict" = ok ] || { lib_lines "$log"; echo "$verdict"; return; }
  awk -F'"' '$2 == "SET" { s = $4 } $2 == "GET" { g = $4 }
             END { if (s == "" || g == "") print "failed"; else print s, g }' "$log.cli"
}

# median FILE COLUMN -> median of COLUMN over the runs that gave numbers; else the first
# run's verdict ("failed" or "not-bypassed")
median() {
  awk -v c="$2" '
    $1 ~ /^[0-9.]+$/ { v[++n] = $c; next }
    why == "" { why = $1 }
    END {
      if (n == 0) { print (why == "" ? "failed" : why); exit }
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }' "$1" 2>/dev/null || echo failed
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
  if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "-" }'; }

# --- runs -----------------------------------------------------------------------------

echo "bench/tcp: $ROUNDS rounds; sockperf ${SECONDS_PER_RUN}s per run, redis-benchmark" \
     "-n $REQUESTS -c 50; server cpu $SRV_CPU, client cpu $CLI_CPU" >&2
PARTS=" ${BENCH_PARTS:-sockperf redis} "
# record BENCH MODE FILE: the run's figures (last line of FILE) to BENCH_OUT/tcp.tsv
record() {
  [ -n "${BENCH_OUT:-}" ] || return 0
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$ROUND" "$(tail -n 1 "$3")" "$LAST_CMD" \
    >>"$BENCH_OUT/tcp.tsv"
}
for r in $(seq "$ROUNDS"); do
  ROUND=$r
  for mode in kernel busy bypass; do
    [[ "$PARTS" == *" sockperf "* ]] || break
    echo "bench/tcp: round $r sockperf $mode" >&2
    LAST_CMD=-
    sockperf_run "$mode" >>"$WORK/sp-$mode"
    record sockperf "$mode" "$WORK/sp-$mode"
  done
  for pipe in 1 16; do
    for mode in kernel bypass; do
      [[ "$PARTS" == *" redis "* ]] || break
      echo "bench/tcp: round $r redis -P$pipe $mode" >&2
      LAST_CMD=-
      redis_run "$mode" "$pipe" >>"$WORK/rd-$mode-$pipe"
      record "redis-P$pipe" "$mode" "$WORK/rd-$mode-$pipe"
    done
  done
done

if [[ "$PARTS" == *" sockperf "* ]]; then
echo
echo "sockperf TCP ping-pong, 64 B, half-RTT usec, median of $ROUNDS runs of ${SECONDS_PER_RUN}s"
printf '%-7s %16s %17s %10s %16s %13s\n' metric "kernel blocking" "kernel busy-poll" bypass \
  "bypass/blocking" "bypass/busy"
col=1
for m in p50 p99 p99.9; do
  k=$(median "$WORK/sp-kernel" $col) b=$(median "$WORK/sp-busy" $col)
  x=$(median "$WORK/sp-bypass" $col)
  printf '%-7s %16s %17s %10s %16s %13s\n' "$m" "$k" "$b" "$x" "$(ratio "$x" "$k")" \
    "$(ratio "$x" "$b")"
  col=$((col + 1))
done
fi
if [[ "$PARTS" == *" redis "* ]]; then
echo
echo "redis-benchmark -n $REQUESTS -c 50, requests/s, median of $ROUNDS runs"
printf '%-10s %14s %14s %8s\n' test kernel bypass ratio
for pipe in 1 16; do
  col=1
  for t in SET GET; do
    k=$(median "$WORK/rd-kernel-$pipe" $col) x=$(median "$WORK/rd-bypass-$pipe" $col)
    printf '%-10s %14s %14s %8s\n' "$t -P$pipe" "$k" "$x" "$(ratio "$x" "$k")"
    col=$((col + 1))
  done
done
fi
echo
echo "targets: bypass p50 <= 0.2 x blocking and <= busy-poll; p99.9 <= 0.2 x blocking;" \
     "redis >= 2 x kernel"
