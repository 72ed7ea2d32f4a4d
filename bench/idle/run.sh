#!/usr/bin/env bash
# Idle cost (issue 12): the CPU an idle server uses, on the kernel and accelerated (default
# settings, as users deploy it), side by side.  redis-server in namespace byps-idle-PID
# (bypi0 10.77.249.1), ten idle clients holding connections from bypc-idle-PID (bypi1
# 10.77.249.2); both namespaces are deleted on exit, also on failure or interrupt.
# CPU = the time the server process's threads (the progress thread included) ran over
# SECONDS, in milliseconds, from /proc/PID/task/*/schedstat (nanoseconds: clock ticks,
# 10 ms each, are too coarse for the few milliseconds an idle server uses).
#
#   bench/idle/run.sh OUT_TSV [SECONDS [ROUNDS]]      defaults: 10 3
#
# Writes one line per run to OUT_TSV: bench, mode (kernel|bypass), round, CPU milliseconds, unit,
# command; for bypass runs a second line, idle-progress: the progress thread's own CPU and
# its wake-ups; per round an idle-nginx line per mode: nginx (master + 2 workers, after one
# request), the CPU of all its processes' threads and their wake-ups; and per round a start
# line per mode: a short program's start to exit (python3 binding, listening on and closing
# the accelerated port), the engine's start and leave included.  Prints a summary.  Needs
# root.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$ROOT/build/libbypass.so"
OUT="${1:?usage: run.sh OUT_TSV [SECONDS [ROUNDS]]}"
SECS="${2:-10}"
ROUNDS="${3:-3}"
SNS="byps-idle-$$" CNS="bypc-idle-$$" SIF=bypi0 CIF=bypi1 SIP=10.77.249.1 CIP=10.77.249.2
PORT=6379

die() { echo "bench/idle: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
command -v redis-server >/dev/null || die "redis-server not found (bash scripts/setup.sh)"
[ -f "$LIB" ] || die "$LIB missing: run scripts/setup.sh"

WORK="$(mktemp -d /tmp/bypass-bench-idle.XXXXXX)"
PIDS=()
. "$ROOT/bench/lib/netpair.sh"
netpair_up
# The client side's veth end needs an XDP program to receive what the server's AF_XDP
# socket sends (as in the test harness).
ip -n "$CNS" link set dev "$CIF" xdpdrv obj "$ROOT/build/nicbackend/xdp_pass.bpf.o" sec xdp ||
  die "cannot attach xdp_pass to $CIF"
printf 'interface = "%s";\nrules = ( { action = "accelerate"; proto = "tcp"; port = %d; } );\n' \
  "$SIF" "$PORT" > "$WORK/idle.conf"

cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d\n", s }'; }

# Ten connections held open, idle, from the client namespace.
HOLD='import socket,sys,time
s=[socket.create_connection((sys.argv[1],int(sys.argv[2]))) for _ in range(10)]
for c in s: c.sendall(b"PING\r\n"); c.recv(64)
print("held",flush=True); time.sleep(3600)'

one() {   # mode round
  local mode="$1" round="$2" pre=()
  [ "$mode" = bypass ] && pre=(env LD_PRELOAD="$LIB" BYPASS_CONFIG="$WORK/idle.conf")
  ip netns exec "$SNS" "${pre[@]}" redis-server --port "$PORT" --save '' --appendonly no \
    --bind "$SIP" --protected-mode no > "$WORK/redis-$mode.log" 2>&1 &
  local srv=$!
  PIDS+=("$srv")
  local i
  for i in $(seq 100); do
    ip netns exec "$CNS" redis-cli -h "$SIP" -p "$PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  ip netns exec "$CNS" /usr/bin/python3 -c "$HOLD" "$SIP" "$PORT" > "$WORK/hold.out" 2>&1 &
  local hold=$!
  PIDS+=("$hold")
  for i in $(seq 100); do grep -q held "$WORK/hold.out" && break; sleep 0.1; done
  sleep 2
  local t0 t1 pt="" p0="0 0" p1="0 0"
  pt=$(grep -l '^bypass-progress$' /proc/"$srv"/task/*/comm 2>/dev/null | head -1)
  pt=${pt%/comm}
  [ -n "$pt" ] && p0=$(awk '{ print $1, $3 }' "$pt/schedstat")
  t0=$(cpu_ns "$srv")
  sleep "$SECS"
  t1=$(cpu_ns "$srv")
  [ -n "$pt" ] && p1=$(awk '{ print $1, $3 }' "$pt/schedstat" 2>/dev/null)
  kill "$hold" "$srv" 2>/dev/null
  wait "$hold" "$srv" 2>/dev/null
  local ms
  ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
  printf 'idle\t%s\t%d\t%s\tcpu-ms/%ss\tredis-server, 10 idle connections\n' \
    "$mode" "$round" "$ms" "$SECS" >> "$OUT"
  echo "idle $mode round $round: $ms ms of CPU in ${SECS}s"
  if [ -n "$pt" ]; then   # the progress thread's share: its CPU and its wake-ups
    read -r a0 w0 <<<"$p0"; read -r a1 w1 <<<"$p1"
    printf 'idle-progress\t%s\t%d\t%s\tcpu-ms/%ss\tthe progress thread alone (%d wake-ups)\n' \
      "$mode" "$round" "$(awk -v a="$a0" -v b="$a1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')" \
      "$SECS" $((w1 - w0)) >> "$OUT"
    echo "idle $mode round $round: progress thread $(( (a1 - a0) / 1000 )) us, $((w1 - w0)) wake-ups"
  fi
}

# An idle nginx (master + 2 workers), after one request: the CPU (ms) and the wake-ups of
# every thread of its processes over SECS.  The workers wait in epoll_wait with no timeout.
NGX_PORT=8080
printf 'interface = "%s";\nrules = ( { action = "accelerate"; proto = "tcp"; port = %d; } );\n' \
  "$SIF" "$NGX_PORT" > "$WORK/nginx-idle.conf"
mkdir -p "$WORK/www" && echo hello > "$WORK/www/small.txt" && chmod -R a+rX "$WORK"
nginx_idle() {   # mode round
  local mode="$1" round="$2" pre=() d="$WORK/nginx-$1-$2"
  [ "$mode" = bypass ] && pre=(env LD_PRELOAD="$LIB" BYPASS_CONFIG="$WORK/nginx-idle.conf")
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
daemon off; master_process on; worker_processes 2; pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http { access_log off; server { listen $NGX_PORT; root $WORK/www; } }
EOF
  ip netns exec "$SNS" "${pre[@]}" nginx -c "$d/nginx.conf" -e "$d/error.log" >"$d/out" 2>&1 &
  local srv=$! i
  PIDS+=("$srv")
  for i in $(seq 100); do
    ip netns exec "$CNS" curl -s -m 1 "http://$SIP:$NGX_PORT/small.txt" >/dev/null 2>&1 && break
    sleep 0.1
  done
  sleep 2
  local pids
  pids="$srv $(cat /proc/"$srv"/task/*/children 2>/dev/null)"
  fam() {   # a field of schedstat summed over the family's threads: 1 CPU ns, 3 runs
    local p
    for p in $pids; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
      awk -v f="$1" '{ s += $f } END { printf "%d\n", s }'
  }
  local c0 w0 c1 w1
  c0=$(fam 1); w0=$(fam 3)
  sleep "$SECS"
  c1=$(fam 1); w1=$(fam 3)
  kill -QUIT "$srv" 2>/dev/null; wait "$srv" 2>/dev/null
  local ms
  ms=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
  printf 'idle-nginx\t%s\t%d\t%s\tcpu-ms/%ss\tnginx, master + 2 workers, idle (%d wake-ups)\n' \
    "$mode" "$round" "$ms" "$SECS" $((w1 - w0)) >> "$OUT"
  echo "idle-nginx $mode round $round: $ms ms of CPU in ${SECS}s, $((w1 - w0)) wake-ups"
}

# A short program's start to exit: python3 binds the accelerated port, listens and closes
# (the engine starts and leaves once), 5 times a round; the median per round, in ms.
SHORT='import socket,sys
s=socket.socket(); s.bind((sys.argv[1],int(sys.argv[2]))); s.listen(1); s.close()'
start() {   # mode round
  local mode="$1" round="$2" pre=() i t0 t1 all=()
  [ "$mode" = bypass ] && pre=(env LD_PRELOAD="$LIB" BYPASS_CONFIG="$WORK/idle.conf")
  for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    ip netns exec "$SNS" "${pre[@]}" /usr/bin/python3 -c "$SHORT" "$SIP" "$PORT" || return
    t1=$(date +%s%N)
    all+=($(( (t1 - t0) / 1000 )))
  done
  local ms
  ms=$(printf '%s\n' "${all[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1000 }')
  printf 'start\t%s\t%d\t%s\tms\tpython3: bind, listen, close, start to exit (median of 5)\n' \
    "$mode" "$round" "$ms" >> "$OUT"
  echo "start $mode round $round: $ms ms from start to exit"
}

for r in $(seq "$ROUNDS"); do
  one kernel "$r"
  one bypass "$r"
  nginx_idle kernel "$r"
  nginx_idle bypass "$r"
  start kernel "$r"
  start bypass "$r"
done
