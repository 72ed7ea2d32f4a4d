#!/usr/bin/env bash
# The benchmark suite: kernel against bypass, side by side in one run on this machine, and
# a report in bench/results/<timestamp>/:
#   results.json     every figure (each run and the median) with the command behind it,
#                    the machine (nproc, CPU model, kernel, memory), the commit
#   summary.md       the table: kernel blocking | kernel busy-poll | bypass | ratio, and
#                    the floor (raw-frame half-RTT beside the bypass TCP figure)
#   latency_cdf.png  half-RTT CDF of the sockperf runs (every sample, all rounds)
#   logs/            each part's output
#
# Parts (each creates its own namespaces and veth pair, pins server CPU 0 / client CPU 1,
# and removes everything on exit):
#   sockperf     bench/tcp/run.sh: TCP 64 B ping-pong, kernel blocking / busy-poll / bypass
#   redis        bench/tcp/run.sh: redis-benchmark -P1 / -P16, kernel / bypass
#   iperf3       bench/lib/iperf3.sh: one stream, kernel / bypass (port 5201 accelerated)
#   passthrough  bench/passthrough/run.sh, inline mode: the library's cost on kernel sockets
#   floor        nicbackend/tools/reflect_test.sh: raw-frame UDP ping-pong via byp-reflect
#   fork         bench/fork/run.sh: nginx (master + 2 workers: plain, reuseport, a connection per
#                request) under wrk, PostgreSQL pgbench -S (and -C, a backend per transaction);
#                server preloaded with the default settings, kernel clients
#   memif        bench/memif/run.sh: two processes on one host, TCP over memif against the
#                kernel's loopback (sockperf blocking / busy-poll, redis -P1/-P16) and the
#                raw memif frame floor (byp-memif-pingpong); its tables land in memif.md
#                and at the end of summary.md
#   idle         bench/idle/run.sh: CPU milliseconds (schedstat) of an idle redis-server holding 10 connections
#                (idle.tsv; a row of the deploy table)
#   deploy       bench/deploy/run.sh (issue 10), as users deploy: the server preloaded with
#                the default settings and with the latency profile (BYPASS_SPIN_USEC=-1),
#                kernel clients, beside the kernel server: redis -P1/-P16, memcached -t 1/-t 4
#                (memcaslap), nginx small file and 1 MB (wrk), iperf3 each way; then the
#                idle part (bench/idle/run.sh).  Its own table in summary.md
#   udp          bench/udp/run.sh: sockperf UDP ping-pong, loss-free receive rate (1 and 32
#                multicast groups), multicast one-way latency; kernel against bypass
#
#   bench/run.sh [--quick] [--only PART] [--rounds N] [--help]
#
#   --quick       short runs, 1 round (the whole suite in about 1-2 minutes)
#   --only PART   one part: sockperf | redis | iperf3 | passthrough | floor | udp | memif | fork |
#                 idle | deploy
#   --rounds N    rounds (medians are taken over them); default 3, 1 with --quick
#
# Needs root (namespaces, XDP), build/ and the packages of scripts/setup.sh.  Not a test:
# the numbers depend on the machine and its load.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
usage() { sed -n '2,/^# Needs root/p' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=0 ONLY="" ROUNDS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY="${2:-}"; shift ;;
    --only=*) ONLY="${1#*=}" ;;
    --rounds) ROUNDS="${2:-}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench/run.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
  shift
done
ALL="sockperf redis iperf3 passthrough floor udp memif fork idle deploy"
if [ -n "$ONLY" ] && [[ " $ALL " != *" $ONLY "* ]]; then
  echo "bench/run.sh: --only takes one of: $ALL" >&2; exit 2
fi
PARTS="${ONLY:-$ALL}"
if [ "$QUICK" = 1 ]; then
  MODE=quick SECS=3 REQUESTS=50000 IPERF_SECS=3 PT_N=100000 FLOOR_N=20000 UDP_SECS=2; : "${ROUNDS:=1}"
else
  MODE=full SECS=10 REQUESTS=200000 IPERF_SECS=10 PT_N=200000 FLOOR_N=100000 UDP_SECS=10; : "${ROUNDS:=3}"
fi
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: --rounds N, N >= 1" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh: needs root (namespaces, XDP)" >&2; exit 1; }
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
"$PY" -c 'import matplotlib' 2>/dev/null ||
  { echo "bench/run.sh: python3-matplotlib missing (bash scripts/setup.sh)" >&2; exit 1; }
[ -f build/libbypass.so ] || { echo "bench/run.sh: build/libbypass.so missing (bash scripts/setup.sh)" >&2; exit 1; }

STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="$ROOT/bench/results/$STAMP"
mkdir -p "$OUT/logs"

# Each part runs as a child in its own process group; on interrupt it gets SIGTERM (by
# its pid) and removes its own namespaces and processes before we go.
CHILD=""
on_signal() {
  if [ -n "$CHILD" ]; then
    kill -TERM "$CHILD" 2>/dev/null
    wait "$CHILD" 2>/dev/null
  fi
  echo "bench/run.sh: interrupted; partial results in $OUT" >&2
  exit 130
}
trap on_signal INT TERM HUP

run_part() { # NAME LOG cmd... : runs it in the background and waits (so signals land)
  local name="$1" log="$2" t0=$SECONDS rc
  shift 2
  echo "bench/run.sh: $name ..." >&2
  "$@" >"$log" 2>&1 &
  CHILD=$!
  wait "$CHILD"; rc=$?
  CHILD=""
  [ "$rc" -ne 0 ] && echo "bench/run.sh: $name exited $rc (see ${log#$ROOT/})" >&2
  echo "bench/run.sh: $name done in $((SECONDS - t0))s" >&2
  return "$rc"
}

# --- machine and commit -----------------------------------------------------------------
dirty=false
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=true
MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
MEM="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
"$PY" - "$OUT/meta.json" <<EOF
import json, sys
json.dump({
  "started": "$(date -Is)",
  "machine": {"nproc": $(nproc), "model": """$MODEL""", "kernel": "$(uname -r)",
              "memory": "$MEM", "hostname": "$(hostname)"},
  "commit": {"head": "$(git rev-parse HEAD 2>/dev/null)", "dirty": $([ $dirty = true ] && echo True || echo False)},
  "parameters": {"mode": "$MODE", "rounds": $ROUNDS, "parts": "$PARTS".split(),
                 "sockperf_seconds": $SECS, "redis_requests": $REQUESTS,
                 "iperf3_seconds": $IPERF_SECS, "passthrough_messages": $PT_N,
                 "floor_count": $FLOOR_N, "spin_usec": "${BENCH_SPIN_USEC:--1}",
                 "command": "bench/run.sh ${QUICK:+$([ $QUICK = 1 ] && echo --quick)} ${ONLY:+--only $ONLY} --rounds $ROUNDS"}
}, open(sys.argv[1], "w"), indent=1)
EOF

# --- parts ------------------------------------------------------------------------------
tcp_parts=""
[[ " $PARTS " == *" sockperf "* ]] && tcp_parts+="sockperf "
[[ " $PARTS " == *" redis "* ]] && tcp_parts+="redis"
if [ -n "$tcp_parts" ]; then
  run_part "bench/tcp ($tcp_parts)" "$OUT/logs/tcp.log" \
    env BENCH_OUT="$OUT" BENCH_PARTS="$tcp_parts" bash bench/tcp/run.sh "$SECS" "$ROUNDS" "$REQUESTS"
  # The samples are for the CDF; compressed, they stay beside the results.
  for f in "$OUT"/sockperf-*.csv; do [ -f "$f" ] && gzip -1 "$f"; done
fi

if [[ " $PARTS " == *" iperf3 "* ]]; then
  : >"$OUT/iperf3.tsv"
  run_part iperf3 "$OUT/logs/iperf3.log" bash bench/lib/iperf3.sh "$OUT/iperf3.tsv" "$IPERF_SECS" "$ROUNDS"
fi

if [[ " $PARTS " == *" passthrough "* ]]; then
  : >"$OUT/passthrough.tsv"
  cmd="bash bench/passthrough/run.sh $PT_N 1 64 inline"
  for r in $(seq "$ROUNDS"); do
    # One round of the script alternates kernel and preload runs and prints both.
    run_part "passthrough round $r" "$OUT/logs/passthrough-$r.log" bash bench/passthrough/run.sh "$PT_N" 1 64 inline
    awk -v r="$r" -v cmd="$cmd" '$1 == "inline" && $2 ~ /^[0-9.]+$/ { printf "inline\t%s\t%s\t%s\t%s\n", r, $2, $3, cmd }' \
      "$OUT/logs/passthrough-$r.log" >>"$OUT/passthrough.tsv"
  done
fi

if [[ " $PARTS " == *" floor "* ]]; then
  : >"$OUT/floor.tsv"
  if [ -x build/nicbackend/byp-reflect ] && [ -x build/nicbackend/byp-udp-pingpong ]; then
    run_part floor "$OUT/logs/floor.log" env REFLECT_OUT="$OUT/floor.tsv" REFLECT_CPU=0 CLIENT_CPU=1 \
      bash nicbackend/tools/reflect_test.sh build "$FLOOR_N"
  else
    echo "bench/run.sh: floor: build/nicbackend/byp-reflect not built" >&2
  fi
fi

if [[ " $PARTS " == *" udp "* ]]; then
  : >"$OUT/udp.tsv"
  run_part udp "$OUT/logs/udp.log" env BENCH_OUT="$OUT" bash bench/udp/run.sh "$UDP_SECS" "$ROUNDS"
  for f in "$OUT"/sockperf-udp-*.csv; do [ -f "$f" ] && gzip -1 "$f"; done
fi

if [[ " $PARTS " == *" memif "* ]]; then
  : >"$OUT/memif.tsv"
  run_part memif "$OUT/logs/memif.log" env BENCH_OUT="$OUT" \
    bash bench/memif/run.sh "$SECS" "$ROUNDS" "$REQUESTS" 0   # the floor as long as sockperf
fi

if [[ " $PARTS " == *" fork "* ]]; then
  : >"$OUT/fork.tsv"
  run_part fork "$OUT/logs/fork.log" bash bench/fork/run.sh "$OUT/fork.tsv" "$SECS" "$ROUNDS"
fi

if [[ " $PARTS " == *" deploy "* ]]; then
  : >"$OUT/deploy.tsv"
  run_part deploy "$OUT/logs/deploy.log" bash bench/deploy/run.sh "$OUT/deploy.tsv" "$SECS" "$ROUNDS" "$REQUESTS"
fi

if [[ " $PARTS " == *" idle "* || " $PARTS " == *" deploy "* ]]; then
  : >"$OUT/idle.tsv"
  run_part idle "$OUT/logs/idle.log" bash bench/idle/run.sh "$OUT/idle.tsv" "$SECS" "$ROUNDS"
fi

"$PY" bench/lib/report.py "$OUT" || { echo "bench/run.sh: report failed" >&2; exit 1; }
[ -s "$OUT/memif.md" ] && { echo; cat "$OUT/memif.md"; } >>"$OUT/summary.md"
echo "bench/run.sh: results in ${OUT#$ROOT/}/ (summary.md, results.json, latency_cdf.png)" >&2
echo
cat "$OUT/summary.md"
