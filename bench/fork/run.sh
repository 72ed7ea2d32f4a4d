#!/usr/bin/env bash
# Forking servers, kernel against bypass, side by side, over a veth pair between two
# namespaces this script creates (byps-fork-PID: bypf0 10.77.250.1, bypc-fork-PID: bypf1
# 10.77.250.2) and deletes on exit, also on failure or interrupt.  The server is preloaded
# with the default settings (as users deploy it) and pinned to CPU 0; the clients are the
# kernel's, on CPU 1.
#   nginx     master + 2 workers, a small static file, wrk -t 2 -c 50 (requests/s)
#   nginx-reuseport  the same with `listen 8080 reuseport` (a listener per worker)
#   nginx-close      the same as nginx with a new connection per request (`Connection: close`)
#   pgbench   PostgreSQL 15 as its own user with the README's capabilities, pgbench -S
#             (select only) -c 8 -j 2 (transactions/s)
#   pgbench-connect  the same with -C: a new connection, so a new backend forked by the
#             postmaster, per transaction
# Rounds alternate kernel and bypass.  A bypass run whose traffic went through the kernel
# (the server namespace's TCP counters moved by more than a few hundred segments) is
# "not-bypassed".
#
#   bench/fork/run.sh OUT_TSV [SECONDS [ROUNDS [PARTS]]]
#       defaults: 10 3 "nginx nginx-reuseport nginx-close pgbench pgbench-connect"
#
# Environment: FORK_MODES (default "kernel bypass"); "base" runs the library FORK_BASE_LIB
# (another build's, for a before/after comparison in one run).  FORK_PERF=DIR records a
# profile of the server's CPU (perf record -g, the middle of each client run) per run in
# DIR/NAME-MODE-ROUND.data.
#
# Writes one line per run to OUT_TSV: bench, mode (kernel|bypass), round, value or verdict,
# unit, command.  Needs root.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$ROOT/build/libbypass.so"
OUT="${1:?usage: run.sh OUT_TSV [SECONDS [ROUNDS [PARTS]]]}"
SECS="${2:-10}"
ROUNDS="${3:-3}"
PARTS="${4:-nginx nginx-reuseport nginx-close pgbench pgbench-connect}"
SNS="byps-fork-$$" CNS="bypc-fork-$$" SIF=bypf0 CIF=bypf1 SIP=10.77.250.1 CIP=10.77.250.2
SRV_CPU=0 CLI_CPU=1 QUIET=300
PG=/usr/lib/postgresql/15/bin
CAPS=+net_admin,+net_raw,+ipc_lock,+bpf,+perfmon

die() { echo "bench/fork: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
for t in nginx wrk; do command -v $t >/dev/null || die "$t not found (bash scripts/setup.sh)"; done
[ -x "$PG/postgres" ] || die "PostgreSQL 15 not found (bash scripts/setup.sh)"
[ -f "$LIB" ] || die "$LIB missing: run scripts/setup.sh"

WORK="$(mktemp -d /tmp/bypass-bench-fork.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
# shellcheck source=../lib/netpair.sh
. "$ROOT/bench/lib/netpair.sh"
netpair_up

cat >"$WORK/bypass.conf" <<EOF
interface = "$SIF";
rules = ( { action = "accelerate"; proto = "tcp"; port = 8080; },
          { action = "accelerate"; proto = "tcp"; port = 5433; } );
EOF
chmod 644 "$WORK/bypass.conf"

tcp_segs() { ip netns exec "$SNS" awk '/^Tcp:/ { if (h) { print $11 + $12; exit } h = 1 }' /proc/net/snmp; }

srv_prefix() { # MODE -> PFX
  PFX=(ip netns exec "$SNS" env -u LD_PRELOAD -u BYPASS_CONFIG)
  [ "$1" = bypass ] && PFX+=("LD_PRELOAD=$LIB" "BYPASS_CONFIG=$WORK/bypass.conf")
  [ "$1" = base ] && PFX+=("LD_PRELOAD=${FORK_BASE_LIB:?FORK_BASE_LIB for the base mode}" "BYPASS_CONFIG=$WORK/bypass.conf")
  PFX+=(taskset -c "$SRV_CPU")
}

# A profile of the server's CPU while the client runs (FORK_PERF): started before the
# client, it waits a second and records SECS - 2 seconds.  The pid to wait for, or nothing.
perf_start() { # NAME MODE ROUND
  [ -n "${FORK_PERF:-}" ] || return 0
  mkdir -p "$FORK_PERF"
  (sleep 1; perf record -q -C "$SRV_CPU" -g -o "$FORK_PERF/$1-$2-$3.data" -- sleep $(( SECS > 3 ? SECS - 2 : 1 )) \
     >/dev/null 2>&1) &
  PERF_PID=$!
}
perf_wait() { [ -n "${FORK_PERF:-}" ] && wait "$PERF_PID" 2>/dev/null; return 0; }

# Frames the client's interface received and sent, and their count per request (stderr):
# a ratio apart from the kernel's shows a different segmenting or acknowledging.
frames() {
  ip netns exec "$CNS" cat /sys/class/net/"$CIF"/statistics/rx_packets /sys/class/net/"$CIF"/statistics/tx_packets |
    tr '\n' ' '
}
frames_note() { # NAME MODE ROUND BEFORE REQUESTS
  local n="${5:-0}"
  [ "$n" -gt 0 ] 2>/dev/null || return 0
  echo "$(frames) $4" | awk -v n="$n" -v what="$1 $2 $3" \
    '{ printf "%s: client frames per request in %.2f, out %.2f\n", what, ($1 - $3) / n, ($2 - $4) / n }' >&2
}

emit() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$OUT"; }

wait_port() { # PORT
  local i
  for i in $(seq 100); do
    ip netns exec "$CNS" bash -c "exec 3<>/dev/tcp/$SIP/$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# --- nginx ------------------------------------------------------------------------------
mkdir -p "$WORK/www"
echo "hello from nginx" >"$WORK/www/small.txt"
nginx_one() { # MODE ROUND [reuseport|close]
  local mode="$1" r="$2" rp="" name=nginx d="$WORK/nginx-$1-$2-${3:-plain}" before val hdr=()
  [ "${3:-}" = reuseport ] && rp=reuseport && name=nginx-reuseport
  [ "${3:-}" = close ] && hdr=(-H "Connection: close") && name=nginx-close
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
daemon off; master_process on; worker_processes 2; pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http { access_log off; server { listen 8080 $rp; root $WORK/www; } }
EOF
  srv_prefix "$mode"
  "${PFX[@]}" nginx -c "$d/nginx.conf" -e "$d/error.log" >"$d/out" 2>&1 &
  local spid=$!
  PIDS+=("$spid")
  wait_port 8080 || { emit "$name" "$mode" "$r" failed "req/s" "nginx did not listen"; kill "$spid"; wait "$spid"; return; }
  before=$(tcp_segs)
  local ccmd=(ip netns exec "$CNS" taskset -c "$CLI_CPU" wrk -t 2 -c 50 -d "$SECS" "${hdr[@]}" "http://$SIP:8080/small.txt")
  perf_start "$name" "$mode" "$r"
  local f0; f0=$(frames)
  "${ccmd[@]}" >"$d/wrk" 2>&1
  perf_wait
  val=$(awk '/^Requests\/sec:/ { print $2 }' "$d/wrk")
  frames_note "$name" "$mode" "$r" "$f0" "$(awk '/requests in/ { print $1; exit }' "$d/wrk")"
  grep -q "Non-2xx\|Socket errors" "$d/wrk" && { val=failed; cat "$d/wrk" "$d/error.log" "$d/out" >&2; }
  [ "$mode" != kernel ] && [ $(( $(tcp_segs) - before )) -gt $QUIET ] && val=not-bypassed
  emit "$name" "$mode" "$r" "${val:-failed}" "req/s" "${PFX[*]} nginx (2 workers${rp:+, reuseport}); ${ccmd[*]}"
  kill -QUIT "$spid"; wait "$spid" 2>/dev/null
}

# --- pgbench ----------------------------------------------------------------------------
AS_PG=(setpriv --reuid postgres --regid postgres --init-groups)
pg_setup() {
  mkdir -p "$WORK/pg" && chown postgres:postgres "$WORK/pg"
  "${AS_PG[@]}" "$PG/initdb" -D "$WORK/pg/data" -A trust -U postgres --no-sync >/dev/null 2>&1 ||
    die "initdb failed"
  echo "host all all 10.0.0.0/8 trust" >>"$WORK/pg/data/pg_hba.conf"
}
pg_one() { # MODE ROUND [connect]
  local mode="$1" r="$2" before val name=pgbench opt=()
  [ "${3:-}" = connect ] && name=pgbench-connect && opt=(-C)
  srv_prefix "$mode"
  "${PFX[@]}" "${AS_PG[@]}" --inh-caps "$CAPS" --ambient-caps "$CAPS" "$PG/postgres" \
    -D "$WORK/pg/data" -p 5433 -c listen_addresses='*' -c unix_socket_directories="$WORK/pg" \
    -c max_connections=40 -c fsync=off >"$WORK/pg/log-$mode-$r" 2>&1 &
  local spid=$!
  PIDS+=("$spid")
  wait_port 5433 || { emit "$name" "$mode" "$r" failed "tps" "postgres did not listen"; kill "$spid"; wait "$spid"; return; }
  local pgb=(ip netns exec "$CNS" taskset -c "$CLI_CPU" "$PG/pgbench" -h "$SIP" -p 5433 -U postgres)
  if [ ! -f "$WORK/pg/initialised" ]; then
    "${pgb[@]}" -i -s 2 postgres >/dev/null 2>&1 && touch "$WORK/pg/initialised"
  fi
  before=$(tcp_segs)
  perf_start "$name" "$mode" "$r"
  local f0; f0=$(frames)
  "${pgb[@]}" -S "${opt[@]}" -c 8 -j 2 -T "$SECS" postgres >"$WORK/pg/bench-$name-$mode-$r" 2>&1
  perf_wait
  val=$(awk '/^tps = / { print $3; exit }' "$WORK/pg/bench-$name-$mode-$r")
  frames_note "$name" "$mode" "$r" "$f0" "$(awk '/actually processed:/ { print $NF; exit }' "$WORK/pg/bench-$name-$mode-$r" | tr -dc 0-9)"
  # With -C each backend exits holding its connection, which the library hands to the
  # kernel (TCP_REPAIR: what the program's last exit handlers write must still leave, see
  # docs/architecture.md "exit"); the kernel then sends its FIN and takes the last ACK.
  local quiet=$QUIET
  [ "$name" = pgbench-connect ] && quiet=$(( QUIET + 4 * $(awk '/actually processed:/ { print $NF; exit }' "$WORK/pg/bench-$name-$mode-$r" | tr -dc 0-9) ))
  [ "$mode" != kernel ] && [ $(( $(tcp_segs) - before )) -gt $quiet ] && val=not-bypassed
  emit "$name" "$mode" "$r" "${val:-failed}" "tps" "${PFX[*]} postgres; ${pgb[*]} -S ${opt[*]} -c 8 -j 2 -T $SECS"
  kill -INT "$spid"; wait "$spid" 2>/dev/null
}

[[ " $PARTS " == *" pgbench"* ]] && pg_setup
for r in $(seq "$ROUNDS"); do
  for mode in ${FORK_MODES:-kernel bypass}; do
    [[ " $PARTS " == *" nginx "* ]] && nginx_one "$mode" "$r"
    [[ " $PARTS " == *" nginx-reuseport "* ]] && nginx_one "$mode" "$r" reuseport
    [[ " $PARTS " == *" nginx-close "* ]] && nginx_one "$mode" "$r" close
    [[ " $PARTS " == *" pgbench "* ]] && pg_one "$mode" "$r"
    [[ " $PARTS " == *" pgbench-connect "* ]] && pg_one "$mode" "$r" connect
  done
done
cat "$OUT"
