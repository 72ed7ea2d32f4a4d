#!/usr/bin/env bash
# Deployment benchmark (issue 10): the server preloaded as users deploy it, its clients the
# kernel's own stack, beside the kernel server in the same run.  A veth pair between two
# namespaces this script creates (byps-dep-PID: bypd0 10.77.248.1, bypc-dep-PID: bypd1
# 10.77.248.2) and deletes on exit, also on failure or interrupt.  Server pinned to CPU 0,
# client to CPU 1.  Three server modes, alternating within each round:
#   kernel    no library
#   bypass    LD_PRELOAD=build/libbypass.so, default settings (no BYPASS_* but the config)
#   latency   the same with the latency profile, BYPASS_SPIN_USEC=-1
#   fixed     (only when asked for in DEPLOY_MODES) the defaults with BYPASS_SPIN_ADAPTIVE=0
#   base      (only when asked for in DEPLOY_MODES) the defaults with another build's library,
#             DEPLOY_BASE_LIB (a before/after comparison in one run)
# Workloads (PARTS):
#   redis     redis-server; redis-benchmark -c 50 -P1 and -P16, SET and GET (requests/s)
#   redis-idle  the same server holding 10,000 idle connections (idle_conns.py);
#             redis-benchmark -c 50 -P1 GET (requests/s)
#   memcached memcached -t 1 and -t 4; memcaslap -T 2 -c 64 (TPS)
#   nginx     nginx, master_process off, one worker; wrk -t 2: a small file (-c 50), the
#             same with a new connection per request (`Connection: close`), and a 1 MB
#             file (-c 10) (requests/s)
#   iperf3    one stream, kernel client -> accelerated server (rx) and the reverse (-R, tx)
#             (Gbit/s, receiver)
# A bypass/latency run whose traffic went through the kernel (the server namespace's TCP
# counters moved by more than a few hundred segments) is "not-bypassed".
#
#   bench/deploy/run.sh OUT_TSV [SECONDS [ROUNDS [REQUESTS [PARTS]]]]
#       defaults: 10 3 200000 "redis redis-idle memcached nginx iperf3"
#
# Environment: DEPLOY_MODES (default "kernel bypass latency"); DEPLOY_PERF=DIR records the
# server CPU (every task on it, softirqs included) during each bypass run with
# `perf record -g -C 0` into DIR/<bench>-<mode>-<round>.data; with DEPLOY_PERF_STAT=EVENTS,
# `perf stat --per-thread -e EVENTS` of the server into DIR/<bench>-<mode>-<round>.stat,
# or with DEPLOY_STRACE=1 a `strace -c -f` of the server (system calls of all its threads,
# counts and errors) into DIR/<bench>-<mode>-<round>.strace; DEPLOY_PERF_KERNEL=1 records
# the kernel server's runs too.
# Writes one line per run to OUT_TSV: bench, mode, round, value or verdict, unit, command.
# Needs root.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$ROOT/build/libbypass.so"
OUT="${1:?usage: run.sh OUT_TSV [SECONDS [ROUNDS [REQUESTS [PARTS]]]]}"
SECS="${2:-10}"
ROUNDS="${3:-3}"
REQUESTS="${4:-200000}"
PARTS="${5:-redis redis-idle memcached nginx iperf3}"
MODES="${DEPLOY_MODES:-kernel bypass latency}"
SNS="byps-dep-$$" CNS="bypc-dep-$$" SIF=bypd0 CIF=bypd1 SIP=10.77.248.1 CIP=10.77.248.2
SRV_CPU=0 CLI_CPU=1 QUIET=300
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3

die() { echo "bench/deploy: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
for t in redis-server redis-benchmark memcached memcaslap nginx wrk iperf3; do
  command -v $t >/dev/null || die "$t not found (bash scripts/setup.sh)"
done
[ -f "$LIB" ] || die "$LIB missing: run scripts/setup.sh"

WORK="$(mktemp -d /tmp/bypass-bench-dep.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
# shellcheck source=../lib/netpair.sh
. "$ROOT/bench/lib/netpair.sh"
netpair_up

cat >"$WORK/bypass.conf" <<EOF
interface = "$SIF";
rules = ( { action = "accelerate"; proto = "tcp"; port = 6379; },
          { action = "accelerate"; proto = "tcp"; port = 11211; },
          { action = "accelerate"; proto = "tcp"; port = 8080; },
          { action = "accelerate"; proto = "tcp"; port = 5201; } );
EOF
chmod 644 "$WORK/bypass.conf"

tcp_segs() { ip netns exec "$SNS" awk '/^Tcp:/ { if (h) { print $11 + $12; exit } h = 1 }' /proc/net/snmp; }

srv_prefix() { # MODE -> PFX: the server's argv prefix, in SNS, pinned to CPU 0
  PFX=(ip netns exec "$SNS" env -u LD_PRELOAD -u BYPASS_CONFIG -u BYPASS_SPIN_USEC)
  case "$1" in
    bypass) PFX+=("LD_PRELOAD=$LIB" "BYPASS_CONFIG=$WORK/bypass.conf") ;;
    latency) PFX+=("LD_PRELOAD=$LIB" "BYPASS_CONFIG=$WORK/bypass.conf" BYPASS_SPIN_USEC=-1) ;;
    fixed) PFX+=("LD_PRELOAD=$LIB" "BYPASS_CONFIG=$WORK/bypass.conf" BYPASS_SPIN_ADAPTIVE=0) ;;
    base) PFX+=("LD_PRELOAD=${DEPLOY_BASE_LIB:?DEPLOY_BASE_LIB for the base mode}" "BYPASS_CONFIG=$WORK/bypass.conf") ;;
  esac
  PFX+=(taskset -c "$SRV_CPU")
}
CLI=(ip netns exec "$CNS" taskset -c "$CLI_CPU")

emit() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$OUT"; echo "bench/deploy: $2 round $3 $1: $4 $5" >&2; }

wait_port() { # PORT PID: a connection from the client side (iperf3 -s -1 serves one
  local i          # client, so for it the listening socket, as ss shows it, instead)
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || return 1
    if [ "$1" = 5201 ]; then
      ip netns exec "$SNS" ss -Hltn "sport = :$1" | grep -q . && return 0
    else
      ip netns exec "$CNS" bash -c "exec 3<>/dev/tcp/$SIP/$1" 2>/dev/null && return 0
    fi
    sleep 0.1
  done
  return 1
}

# start MODE NAME PORT cmd...: starts the server, waits for its port; SPID, BEFORE set.
SPID="" BEFORE=0 PERFPID=""
start() {
  local mode="$1" name="$2" port="$3"
  shift 3
  srv_prefix "$mode"
  "${PFX[@]}" "$@" >"$WORK/$name-$mode.log" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  wait_port "$port" "$SPID" || { echo "bench/deploy: $name ($mode) did not listen" >&2; tail -n 5 "$WORK/$name-$mode.log" >&2; return 1; }
  [ "$mode" != kernel ] && sleep 0.5
  if [ -n "${DEPLOY_PERF:-}" ] && { [ "$mode" != kernel ] || [ -n "${DEPLOY_PERF_KERNEL:-}" ]; }; then
    mkdir -p "$DEPLOY_PERF"
    if [ -n "${DEPLOY_STRACE:-}" ]; then   # system call counts of the server instead
      strace -c -f -q -p "$SPID" -o "$DEPLOY_PERF/$name-$mode-$ROUND.strace" >/dev/null 2>&1 &
    elif [ -n "${DEPLOY_PERF_STAT:-}" ]; then   # per-thread counts of the server instead
      perf stat --per-thread -p "$SPID" -e "$DEPLOY_PERF_STAT" -o "$DEPLOY_PERF/$name-$mode-$ROUND.stat" \
        >/dev/null 2>&1 &
    else
      perf record ${DEPLOY_PERF_ARGS:--g} -q -o "$DEPLOY_PERF/$name-$mode-$ROUND.data" -C "$SRV_CPU" >/dev/null 2>&1 &
    fi
    PERFPID=$!
  fi
  BEFORE=$(tcp_segs)
  return 0
}

# verdict MODE VALUE -> the value, or not-bypassed / failed
verdict() {
  local v="$2"
  [ -z "$v" ] && v=failed
  [ "$1" != kernel ] && [ $(($(tcp_segs) - BEFORE)) -gt $QUIET ] && v=not-bypassed
  echo "$v"
}

stop() { # SIGNAL
  if [ -n "$PERFPID" ]; then kill -INT "$PERFPID" 2>/dev/null; wait "$PERFPID" 2>/dev/null; PERFPID=""; fi
  kill "-${1:-TERM}" "$SPID" 2>/dev/null
  local i
  for i in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
  PIDS=()
}

# --- redis ------------------------------------------------------------------------------
redis_one() { # MODE
  local mode="$1" p n v
  start "$mode" redis 6379 redis-server --port 6379 --bind "$SIP" --save '' --appendonly no \
    --protected-mode no || { for p in 1 16; do emit "redis-P$p-SET" "$mode" "$ROUND" failed req/s "no server"; done; return; }
  for p in 1 16; do
    n=$REQUESTS; [ $p = 16 ] && n=$((REQUESTS * 5))
    local ccmd=("${CLI[@]}" redis-benchmark -h "$SIP" -p 6379 -c 50 -P $p -n $n -t set,get --csv)
    BEFORE=$(tcp_segs)
    timeout -k 5 120 "${ccmd[@]}" >"$WORK/rb" 2>&1
    for t in SET GET; do
      v=$(awk -F'","' -v t="$t" '$1 == "\"" t { print $2 + 0 }' "$WORK/rb")
      emit "redis-P$p-$t" "$mode" "$ROUND" "$(verdict "$mode" "$v")" req/s "${PFX[*]} redis-server; ${ccmd[*]}"
    done
  done
  stop TERM
}

# --- redis with 10,000 idle connections ----------------------------------------------------
IDLE_CONNS=10000
redis_idle_one() { # MODE
  local mode="$1" v i
  start "$mode" redis-idle 6379 redis-server --port 6379 --bind "$SIP" --save '' --appendonly no \
    --protected-mode no --maxclients $((IDLE_CONNS + 200)) ||
    { emit "redis-idle-GET" "$mode" "$ROUND" failed req/s "no server"; return; }
  rm -f "$WORK/idle-stop"
  ip netns exec "$CNS" "$PY" "$HERE/idle_conns.py" "$SIP" 6379 $IDLE_CONNS "$WORK/idle-stop" \
    >"$WORK/idle-conns" 2>&1 &
  local ipid=$!
  PIDS+=("$ipid")
  for i in $(seq 600); do grep -q '^open' "$WORK/idle-conns" && break; kill -0 "$ipid" 2>/dev/null || break; sleep 0.1; done
  local ccmd=("${CLI[@]}" redis-benchmark -h "$SIP" -p 6379 -c 50 -P 1 -n "$REQUESTS" -t get --csv)
  BEFORE=$(tcp_segs)
  v=""
  grep -q '^open' "$WORK/idle-conns" && timeout -k 5 120 "${ccmd[@]}" >"$WORK/rb" 2>&1 &&
    v=$(awk -F'","' '$1 == "\"GET" { print $2 + 0 }' "$WORK/rb")
  emit "redis-idle-GET" "$mode" "$ROUND" "$(verdict "$mode" "$v")" req/s \
    "${PFX[*]} redis-server; $IDLE_CONNS idle connections (bench/deploy/idle_conns.py); ${ccmd[*]}"
  touch "$WORK/idle-stop"
  wait "$ipid" 2>/dev/null
  stop TERM
}

# --- memcached ----------------------------------------------------------------------------
mc_one() { # MODE THREADS
  local mode="$1" t="$2" v
  start "$mode" "mc$t" 11211 memcached -u root -l "$SIP" -p 11211 -U 0 -t "$t" -m 256 -c 1024 ||
    { emit "memcached-t$t" "$mode" "$ROUND" failed TPS "no server"; return; }
  local ccmd=("${CLI[@]}" memcaslap -s "$SIP:11211" -T 2 -c 64 -t "${SECS}s")
  timeout -k 5 $((SECS + 60)) "${ccmd[@]}" >"$WORK/ms" 2>&1
  v=$(awk '/^Run time:/ { for (i = 1; i <= NF; i++) if ($i == "TPS:") print $(i + 1) }' "$WORK/ms" | tail -1)
  emit "memcached-t$t" "$mode" "$ROUND" "$(verdict "$mode" "$v")" TPS "${PFX[*]} memcached -t $t; ${ccmd[*]}"
  stop TERM
}

# --- nginx --------------------------------------------------------------------------------
mkdir -p "$WORK/www"
echo "hello from nginx" >"$WORK/www/small.txt"
head -c 1048576 /dev/urandom >"$WORK/www/1m.bin"
chmod -R a+rX "$WORK/www"
nginx_one() { # MODE
  local mode="$1" d="$WORK/nginx-$1" f v
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $d/nginx.pid; user root;
error_log $d/error.log warn;
events { worker_connections 1024; }
http { access_log off; sendfile on; server { listen 8080; root $WORK/www; } }
EOF
  start "$mode" nginx 8080 nginx -c "$d/nginx.conf" -e "$d/error.log" ||
    { emit nginx-small "$mode" "$ROUND" failed req/s "no server"; return; }
  for f in small:small.txt:50 close:small.txt:50:close 1m:1m.bin:10; do
    IFS=: read -r name file conns close <<<"$f"
    local hdr=()
    [ -n "$close" ] && hdr=(-H "Connection: close")   # a new connection per request
    local ccmd=("${CLI[@]}" wrk -t 2 -c "$conns" -d "${SECS}s" "${hdr[@]}" "http://$SIP:8080/$file")
    BEFORE=$(tcp_segs)
    timeout -k 5 $((SECS + 60)) "${ccmd[@]}" >"$WORK/wrk" 2>&1
    v=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk")
    grep -q "Non-2xx\|Socket errors" "$WORK/wrk" && { v=failed; cat "$WORK/wrk" "$d/error.log" >&2; }
    emit "nginx-$name" "$mode" "$ROUND" "$(verdict "$mode" "$v")" req/s "${PFX[*]} nginx (1 worker); ${ccmd[*]}"
  done
  stop QUIT
}

# --- iperf3 -------------------------------------------------------------------------------
iperf_one() { # MODE DIR(rx|tx)
  local mode="$1" dir="$2" v r=()
  [ "$dir" = tx ] && r=(-R)
  start "$mode" "iperf3-$dir" 5201 iperf3 -s -1 -B "$SIP" -p 5201 ||
    { emit "iperf3-$dir" "$mode" "$ROUND" failed Gbit/s "no server"; return; }
  local ccmd=("${CLI[@]}" iperf3 -c "$SIP" -p 5201 -t "$SECS" -P 1 "${r[@]}" -J)
  timeout -k 5 $((SECS + 30)) "${ccmd[@]}" >"$WORK/ip3.json" 2>"$WORK/ip3.err"
  v=$("$PY" -c '
import json, sys
try:
    print("%.3f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception:
    pass' "$WORK/ip3.json")
  emit "iperf3-$dir" "$mode" "$ROUND" "$(verdict "$mode" "$v")" Gbit/s "${PFX[*]} iperf3 -s; ${ccmd[*]}"
  stop TERM
}

for ROUND in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    [[ " $PARTS " == *" redis "* ]] && redis_one "$mode"
  done
  for mode in $MODES; do
    [[ " $PARTS " == *" redis-idle "* ]] && redis_idle_one "$mode"
  done
  for t in 1 4; do
    for mode in $MODES; do [[ " $PARTS " == *" memcached "* ]] && mc_one "$mode" "$t"; done
  done
  for mode in $MODES; do
    [[ " $PARTS " == *" nginx "* ]] && nginx_one "$mode"
  done
  for dir in rx tx; do
    for mode in $MODES; do [[ " $PARTS " == *" iperf3 "* ]] && iperf_one "$mode" "$dir"; done
  done
done
cat "$OUT"
