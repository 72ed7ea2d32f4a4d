#!/usr/bin/env bash
# Two processes on one host: TCP over the memif backend (both ends under the library,
# shared memory, no kernel on the path) against TCP over the kernel's loopback, in one run,
# in a network namespace of its own (bypm-bench-PID: only lo; the stacks' addresses
# 10.78.250.1/.2 exist only on the memif link):
#
#   floor     byp-memif-pingpong: 64 B raw frames reflected over the same memif, no stack
#             (half-RTT p50 / p99 / p99.9, usec)
#   sockperf  TCP ping-pong, 64 B, half-RTT p50 / p99 / p99.9 (usec):
#               kernel blocking   loopback, sockperf sr --tcp / sockperf pp --tcp -m 64
#               kernel busy-poll  loopback, feed file, -F recvfrom --nonblocked (both spin)
#               memif busy-poll   memif, both ends preloaded, BYPASS_SPIN_USEC=-1
#               memif blocking    memif, both ends preloaded, BYPASS_SPIN_USEC=100 (default)
#   redis     redis-benchmark -P1 and -P16 (SET, GET; requests/s), loopback and memif
#
# Server pinned to CPU 0, client to CPU 1.  ROUNDS rounds; medians are printed.  A memif
# run whose traffic went through the kernel (the namespace's TCP counters moved) is
# reported as "not-bypassed".
#
#   bench/memif/run.sh [SECONDS [ROUNDS [REQUESTS [FLOOR_N]]]]   defaults: 10 3 200000 0
#   (FLOOR_N 0: the floor runs SECONDS, as sockperf does)
#
# Environment: BENCH_OUT=DIR also writes DIR/memif.tsv (bench, mode, round, figures,
# command) and DIR/memif.md (the tables).  Needs root.  Not a test: numbers depend on the
# machine and its load.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$ROOT/build/libbypass.so"
FLOOR="$ROOT/build/nicbackend/byp-memif-pingpong"
SECS="${1:-10}" ROUNDS="${2:-3}" REQUESTS="${3:-200000}" FLOOR_N="${4:-0}"
# The floor runs as long as sockperf does (it then meets the machine's stalls as often),
# unless FLOOR_N gives a number of round trips.
FLOOR_ARG="-t $SECS" FLOOR_WHAT="for ${SECS}s"
[ "$FLOOR_N" != 0 ] && FLOOR_ARG="-n $FLOOR_N" FLOOR_WHAT="$FLOOR_N frames"
NS="bypm-bench-$$"
SIP=10.78.250.1 CIP=10.78.250.2
SPORT=11111 RPORT=6379
SRV_CPU=0 CLI_CPU=1
QUIET=20   # kernel TCP segments a memif run may show (nothing should move)

die() { echo "bench/memif: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespace)"
for t in ip sockperf redis-server redis-benchmark taskset timeout awk; do
  command -v "$t" >/dev/null || die "$t not found (bash scripts/setup.sh)"
done
[ -f "$LIB" ] || die "$LIB missing: build first"
[ -x "$FLOOR" ] || die "$FLOOR missing: build first"

WORK="$(mktemp -d /tmp/bypass-bench-memif.XXXXXX)"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
ip netns add "$NS" || die "cannot create namespace $NS"
ip -n "$NS" link set lo up

write_conf() { # FILE ROLE IP
  cat >"$1" <<EOF
backend = "memif";
memif_socket = "$WORK/memif.sock";
memif_role = "$2";
ip = "$3/24";
rules = (
  { action = "accelerate"; proto = "tcp"; port = $SPORT; },
  { action = "accelerate"; proto = "tcp"; port = $RPORT; }
);
EOF
}
write_conf "$WORK/srv.conf" server "$SIP"
write_conf "$WORK/cli.conf" client "$CIP"
echo "T:127.0.0.1:$SPORT" >"$WORK/feed"

# ns_cmd CONF|- CPU SPIN -> NSCMD: run in the namespace pinned to CPU, preloaded with CONF.
ns_cmd() {
  NSCMD=(ip netns exec "$NS" env -u LD_PRELOAD)
  [ "$1" != - ] && NSCMD+=("LD_PRELOAD=$LIB" "BYPASS_CONFIG=$1" "BYPASS_SPIN_USEC=$3")
  NSCMD+=(taskset -c "$2")
}

tcp_segs() { ip netns exec "$NS" awk '/^Tcp:/ { if (h) { print $11 + $12; exit } h = 1 }' /proc/net/snmp; }

stop_pid() {
  kill "$1" 2>/dev/null
  local i p rest=()
  for i in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
  PIDS=("${rest[@]}")
}

# start_server CONF|- SPIN LOG READY_WORD cmd... -> SERVER_PID, after the server is ready:
# a memif server when the library says its listener is accelerated, a kernel one when it
# listens.
start_server() {
  local conf="$1" spin="$2" log="$3" port="$4" i
  shift 4
  ns_cmd "$conf" "$SRV_CPU" "$spin"
  SRV_CMD=("${NSCMD[@]}" "$@")
  if [ "$conf" != - ]; then
    "${NSCMD[@]}" env BYPASS_LOG=info "$@" >"$log" 2>&1 &
  else
    "${NSCMD[@]}" "$@" >"$log" 2>&1 &
  fi
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for i in $(seq 150); do
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    if [ "$conf" != - ]; then
      grep -qs "tcp listener on port $port accelerated" "$log" && return 0
    else
      ip netns exec "$NS" ss -Hltn "sport = :$port" | grep -q . && return 0
    fi
    sleep 0.1
  done
  return 1
}

verdict() { # SEGS_BEFORE
  local d=$(($(tcp_segs) - $1))
  if [ "$d" -gt "$QUIET" ]; then
    echo "bench/memif: a memif run went through the kernel (+$d TCP segments)" >&2
    echo not-bypassed
  else
    echo ok
  fi
}

record() { # BENCH MODE FILE
  [ -n "${BENCH_OUT:-}" ] || return 0
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$ROUND" "$(tail -n 1 "$3")" "$LAST_CMD" \
    >>"$BENCH_OUT/memif.tsv"
}

floor_run() { # -> "p50 p99 p99.9"
  local log="$WORK/floor" rc
  ns_cmd - "$SRV_CPU" 0
  "${NSCMD[@]}" "$FLOOR" -s "$WORK/floor.sock" -r server >"$log.srv" 2>&1 &
  local spid=$!
  PIDS+=("$spid")
  sleep 0.5
  ns_cmd - "$CLI_CPU" 0
  LAST_CMD="${NSCMD[*]} $FLOOR -s SOCK -r client $FLOOR_ARG (server: -r server, cpu $SRV_CPU)"
  timeout -k 5 $((SECS + 120)) "${NSCMD[@]}" "$FLOOR" -s "$WORK/floor.sock" -r client $FLOOR_ARG \
    >"$log.cli" 2>&1
  rc=$?
  stop_pid "$spid"
  [ "$rc" -eq 0 ] || { tail -3 "$log.cli" >&2; echo failed; return; }
  awk '/^floor:/ { print $6, $8, $10 }' "$log.cli"
}

# sockperf_run MODE -> "p50 p99 p99.9" (usec, half RTT), or "failed" / "not-bypassed"
sockperf_run() {
  local mode="$1" log="$WORK/sockperf-$1" sconf=- cconf=- spin=0
  local srv=(--tcp -i 127.0.0.1 -p "$SPORT") cli=(--tcp -i 127.0.0.1 -p "$SPORT")
  case "$mode" in
    busy) srv=(-f "$WORK/feed" -F r --nonblocked); cli=("${srv[@]}") ;;
    memif-busy|memif-blocking)
      sconf="$WORK/srv.conf" cconf="$WORK/cli.conf"
      srv=(--tcp -i 0.0.0.0 -p "$SPORT") cli=(--tcp -i "$SIP" -p "$SPORT")
      spin=$([ "$mode" = memif-busy ] && echo -1 || echo 100) ;;
  esac
  start_server "$sconf" "$spin" "$log.srv" "$SPORT" sockperf sr "${srv[@]}" ||
    { stop_pid "$SERVER_PID"; tail -3 "$log.srv" >&2; echo failed; return; }
  local s0 rc v=ok
  s0=$(tcp_segs)
  ns_cmd "$cconf" "$CLI_CPU" "$spin"
  # --mps: room in sockperf's table of send times beyond its default 600,000 a second,
  # which a ping-pong over memif reaches ("_seqN > m_maxSequenceNo").
  LAST_CMD="server: ${SRV_CMD[*]} | client: ${NSCMD[*]} sockperf pp ${cli[*]} -m 64 -t $SECS --mps 3000000"
  timeout -k 5 $((SECS + 40)) "${NSCMD[@]}" sockperf pp "${cli[@]}" -m 64 -t "$SECS" --mps 3000000 \
    >"$log.cli" 2>&1
  rc=$?
  [ "$sconf" != - ] && v=$(verdict "$s0")
  stop_pid "$SERVER_PID"
  [ "$rc" -eq 0 ] || { tail -3 "$log.cli" "$log.srv" >&2; echo failed; return; }
  [ "$v" = ok ] || { echo "$v"; return; }
  sed 's/\x1b\[[0-9;]*m//g' "$log.cli" | awk '
    /percentile 50.000 =/ { p50 = $NF }
    /percentile 99.000 =/ { p99 = $NF }
    /percentile 99.900 =/ { p999 = $NF }
    END { if (p50 == "" || p99 == "" || p999 == "") print "failed"; else print p50, p99, p999 }'
}

# redis_run MODE PIPELINE -> "SET_rps GET_rps", or "failed" / "not-bypassed"
redis_run() {
  local mode="$1" pipe="$2" log="$WORK/redis-$1-$2" sconf=- cconf=- host=127.0.0.1
  # -P16 over memif runs at over a million requests/s: 10x the requests, so that the
  # client's DPDK start (about 0.3 s, inside redis-benchmark's first test) does not
  # dominate; the kernel runs get the same count.
  local n="$REQUESTS"
  [ "$pipe" = 16 ] && n=$((REQUESTS * 10))
  [ "$mode" = memif ] && sconf="$WORK/srv.conf" cconf="$WORK/cli.conf" host="$SIP"
  start_server "$sconf" -1 "$log.srv" "$RPORT" redis-server --port "$RPORT" --bind 0.0.0.0 \
    --save '' --appendonly no --protected-mode no --dir "$WORK" --loglevel warning ||
    { stop_pid "$SERVER_PID"; tail -3 "$log.srv" >&2; echo failed; return; }
  local s0 rc v=ok
  s0=$(tcp_segs)
  ns_cmd "$cconf" "$CLI_CPU" -1
  LAST_CMD="server: ${SRV_CMD[*]} | client: ${NSCMD[*]} redis-benchmark -h $host -p $RPORT -n $n -c 50 -P $pipe -t set,get --csv"
  timeout -k 5 300 "${NSCMD[@]}" redis-benchmark -h "$host" -p "$RPORT" -n "$n" \
    -c 50 -P "$pipe" -t set,get --csv >"$log.cli" 2>"$log.err"
  rc=$?
  [ "$sconf" != - ] && v=$(verdict "$s0")
  stop_pid "$SERVER_PID"
  [ "$rc" -eq 0 ] || { tail -3 "$log.err" "$log.srv" >&2; echo failed; return; }
  [ "$v" = ok ] || { echo "$v"; return; }
  awk -F'"' '$2 == "SET" { s = $4 } $2 == "GET" { g = $4 }
             END { if (s == "" || g == "") print "failed"; else print s, g }' "$log.cli"
}

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

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
  if (a ~ /^[0-9.]+(e\+?[0-9]+)?$/ && b ~ /^[0-9.]+(e\+?[0-9]+)?$/ && b > 0) printf "%.2f", a / b; else printf "-" }'; }

# --- runs -------------------------------------------------------------------------------
echo "bench/memif: $ROUNDS rounds; sockperf ${SECS}s per run, redis-benchmark -n $REQUESTS" \
     "-c 50, floor $FLOOR_WHAT; server cpu $SRV_CPU, client cpu $CLI_CPU" >&2
SP_MODES="kernel busy memif-busy memif-blocking"
for r in $(seq "$ROUNDS"); do
  ROUND=$r
  echo "bench/memif: round $r floor" >&2
  LAST_CMD=-; floor_run >>"$WORK/fl"; record floor memif "$WORK/fl"
  for mode in $SP_MODES; do
    echo "bench/memif: round $r sockperf $mode" >&2
    LAST_CMD=-; sockperf_run "$mode" >>"$WORK/sp-$mode"; record sockperf "$mode" "$WORK/sp-$mode"
  done
  for pipe in 1 16; do
    for mode in kernel memif; do
      echo "bench/memif: round $r redis -P$pipe $mode" >&2
      LAST_CMD=-; redis_run "$mode" "$pipe" >>"$WORK/rd-$mode-$pipe"
      record "redis-P$pipe" "$mode" "$WORK/rd-$mode-$pipe"
    done
  done
done

report() {
  echo "## memif: two processes on one host (bench/memif/run.sh)"
  echo
  echo "TCP ping-pong, 64 B, half-RTT usec, median of $ROUNDS runs of ${SECS}s (sockperf);" \
       "floor: raw 64 B frames over the same memif, no stack ($FLOOR_WHAT)"
  echo
  echo "| metric | kernel loopback blocking | kernel loopback busy-poll | memif blocking | memif busy-poll | raw memif floor | memif busy / floor |"
  echo "|---|---|---|---|---|---|---|"
  local col=1 m f
  for m in p50 p99 p99.9; do
    f=$(median "$WORK/fl" $col)
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$m" "$(median "$WORK/sp-kernel" $col)" \
      "$(median "$WORK/sp-busy" $col)" "$(median "$WORK/sp-memif-blocking" $col)" \
      "$(median "$WORK/sp-memif-busy" $col)" "$f" "$(ratio "$(median "$WORK/sp-memif-busy" $col)" "$f")"
    col=$((col + 1))
  done
  echo
  echo "redis-benchmark -n $REQUESTS (-P16: $((REQUESTS * 10))) -c 50, requests/s, median of $ROUNDS runs (both ends busy-poll on memif)"
  echo
  echo "| test | kernel loopback | memif | memif / kernel |"
  echo "|---|---|---|---|"
  local pipe t k x
  for pipe in 1 16; do
    col=1
    for t in SET GET; do
      k=$(median "$WORK/rd-kernel-$pipe" $col) x=$(median "$WORK/rd-memif-$pipe" $col)
      printf '| %s -P%s | %s | %s | %s |\n' "$t" "$pipe" "$k" "$x" "$(ratio "$x" "$k")"
      col=$((col + 1))
    done
  done
  echo
  local p50 f50 p999
  p50=$(median "$WORK/sp-memif-busy" 1) f50=$(median "$WORK/fl" 1) p999=$(median "$WORK/sp-memif-busy" 3)
  echo "targets (issue 8): memif busy-poll p50 <= 1.5 x floor p50: $(awk -v a="$p50" -v b="$f50" \
    'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) print (a <= 1.5 * b ? "met" : "missed"); else print "n/a" }');" \
    "p99.9 < 3 us: $(awk -v a="$p999" 'BEGIN { if (a ~ /^[0-9.]+$/) print (a < 3 ? "met" : "missed"); else print "n/a" }')"
}
report | tee "${BENCH_OUT:-$WORK}/memif.md"
