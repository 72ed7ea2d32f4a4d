#!/usr/bin/env bash
# Demo: the same unmodified redis-server run on the kernel and under
# LD_PRELOAD=build/libbypass.so, side by side, measured by the same
# redis-benchmark over loopback. Prints requests/s for each and the ratio.
#
# Environment: DEMO_REQUESTS (default 50000), DEMO_ROUNDS (default 3),
# DEMO_PORT (first of two ports, default 16379). Extra BYPASS_* variables
# (e.g. BYPASS_CONFIG) are passed to the preloaded server.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LIB="$ROOT/build/libbypass.so"
REQUESTS="${DEMO_REQUESTS:-50000}"
ROUNDS="${DEMO_ROUNDS:-3}"
PORT_KERNEL="${DEMO_PORT:-16379}"
PORT_BYPASS=$((PORT_KERNEL + 1))
TESTS="set,get"

bash scripts/setup.sh >/dev/null || { echo "demo: setup/build failed" >&2; exit 1; }
[ -f "$LIB" ] || { echo "demo: $LIB missing" >&2; exit 1; }

WORK="$(mktemp -d /tmp/bypass-demo.XXXXXX)"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_redis PORT PRELOAD(0|1): starts redis-server in the background.
start_redis() {
  local port="$1" preload="$2" dir="$WORK/$1"
  if port_busy "$port"; then
    echo "demo: port $port is in use; set DEMO_PORT" >&2
    exit 1
  fi
  mkdir -p "$dir"
  local args=(--port "$port" --bind 127.0.0.1 --save '' --appendonly no
              --dir "$dir" --loglevel warning)
  if [ "$preload" = 1 ]; then
    LD_PRELOAD="$LIB" redis-server "${args[@]}" >"$dir/log" 2>&1 &
  else
    env -u LD_PRELOAD redis-server "${args[@]}" >"$dir/log" 2>&1 &
  fi
  PIDS+=($!)
  local i
  for i in $(seq 100); do
    port_busy "$port" && return 0
    sleep 0.1
  done
  echo "demo: redis-server on port $port did not start:" >&2
  cat "$dir/log" >&2
  exit 1
}

# bench PORT -> lines "TEST RPS" from one redis-benchmark run (kernel client).
bench() {
  env -u LD_PRELOAD redis-benchmark -h 127.0.0.1 -p "$1" -n "$REQUESTS" -c 20 \
    -t "$TESTS" --csv | awk -F'"' 'NR > 1 { print $2, $4 }'
}

echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'):" \
     "kernel on port $PORT_KERNEL, LD_PRELOAD=build/libbypass.so on port $PORT_BYPASS"
start_redis "$PORT_KERNEL" 0
start_redis "$PORT_BYPASS" 1
if ! grep -q libbypass.so "/proc/${PIDS[1]}/maps" 2>/dev/null; then
  echo "demo: the preloaded redis-server does not map libbypass.so" >&2
  exit 1
fi

echo "redis-benchmark -n $REQUESTS -c 20 -t $TESTS, $ROUNDS alternating rounds, median:"
: >"$WORK/kernel"
: >"$WORK/bypass"
for r in $(seq "$ROUNDS"); do
  bench "$PORT_KERNEL" >>"$WORK/kernel"
  bench "$PORT_BYPASS" >>"$WORK/bypass"
done

# median FILE TEST -> median requests/s of TEST in FILE
median() {
  awk -v t="$2" '$1 == t { print $2 }' "$1" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                              else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

printf '\n%-8s %16s %16s %8s\n' "test" "kernel req/s" "bypass req/s" "ratio"
printf '%-8s %16s %16s %8s\n' "----" "------------" "------------" "-----"
for t in $(echo "$TESTS" | tr 'a-z,' 'A-Z '); do
  k="$(median "$WORK/kernel" "$t")"
  b="$(median "$WORK/bypass" "$t")"
  awk -v t="$t" -v k="$k" -v b="$b" \
    'BEGIN { printf "%-8s %16.0f %16.0f %8.2f\n", t, k, b, (k > 0 ? b / k : 0) }'
done
echo
echo "Loopback traffic always goes through the kernel, so the ratio is ~1 here;"
echo "acceleration applies to sockets that a BYPASS_CONFIG rule names on a real interface."
if grep -q '^bypass:' "$WORK/$PORT_BYPASS/log"; then
  echo "library messages:"
  grep '^bypass:' "$WORK/$PORT_BYPASS/log"
fi
