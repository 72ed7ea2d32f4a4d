#!/usr/bin/env bash
# iperf3, one stream, kernel against both ends under the library, over a veth pair between
# two namespaces this script creates (byps-ip3-PID: bypi0 10.77.251.1, bypc-ip3-PID: bypi1
# 10.77.251.2) and deletes on exit, also on failure or interrupt.  Server pinned to CPU 0,
# client to CPU 1.  iperf3 opens a control connection and a data connection, both to port
# 5201: the config accelerates that port.  A bypass run whose traffic went through the
# kernel (the namespaces' kernel TCP counters moved) is "not-bypassed".
#
#   bench/lib/iperf3.sh OUT_TSV [SECONDS [ROUNDS]]        defaults: 10 3
#
# Writes one line per run to OUT_TSV: iperf3, mode (kernel|bypass), round, Gbit/s or the
# verdict (failed|not-bypassed), the command, and the reason when it failed.  Needs root.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$ROOT/build/libbypass.so"
OUT="${1:?usage: iperf3.sh OUT_TSV [SECONDS [ROUNDS]]}"
SECS="${2:-10}"
ROUNDS="${3:-3}"
SNS="byps-ip3-$$" CNS="bypc-ip3-$$" SIF=bypi0 CIF=bypi1 SIP=10.77.251.1 CIP=10.77.251.2
PORT=5201 SRV_CPU=0 CLI_CPU=1 QUIET=200
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3

die() { echo "bench/iperf3: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
command -v iperf3 >/dev/null || die "iperf3 not found (bash scripts/setup.sh)"
[ -f "$LIB" ] || die "$LIB missing: run scripts/setup.sh"

WORK="$(mktemp -d /tmp/bypass-bench-ip3.XXXXXX)"
PIDS=()
# shellcheck source=netpair.sh
. "$ROOT/bench/lib/netpair.sh"
netpair_up

for side in srv:$SIF cli:$CIF; do
  cat >"$WORK/${side%%:*}.conf" <<EOF
interface = "${side#*:}";
backend = "af_xdp";
rules = ( { action = "accelerate"; proto = "tcp"; port = $PORT; } );
EOF
done

tcp_segs() { ip netns exec "$1" awk '/^Tcp:/ { if (h) { print $11 + $12; exit } h = 1 }' /proc/net/snmp; }

prefix() { # NS CONF|- CPU -> PFX
  PFX=(ip netns exec "$1" env -u LD_PRELOAD)
  [ "$2" != - ] && PFX+=("LD_PRELOAD=$LIB" "BYPASS_CONFIG=$2" "BYPASS_SPIN_USEC=${BENCH_SPIN_USEC:--1}")
  PFX+=(taskset -c "$3")
}

one() { # MODE ROUND -> a line in OUT
  local mode="$1" r="$2" sconf=- cconf=- log="$WORK/$1-$2" why="" val
  [ "$mode" = bypass ] && sconf="$WORK/srv.conf" cconf="$WORK/cli.conf"
  ip -n "$SNS" link set dev "$SIF" xdp off 2>/dev/null
  ip -n "$CNS" link set dev "$CIF" xdp off 2>/dev/null
  prefix "$SNS" "$sconf" "$SRV_CPU"
  local scmd=("${PFX[@]}" iperf3 -s -1 -B "$SIP" -p "$PORT")
  "${scmd[@]}" >"$log.srv" 2>&1 &
  local spid=$!
  PIDS+=("$spid")
  local i
  for i in $(seq 100); do
    ip netns exec "$SNS" ss -Hltn "sport = :$PORT" | grep -q . && break
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.1
  done
  [ "$mode" = bypass ] && sleep 1
  local s0 c0
  s0=$(tcp_segs "$SNS") c0=$(tcp_segs "$CNS")
  prefix "$CNS" "$cconf" "$CLI_CPU"
  local ccmd=("${PFX[@]}" iperf3 -c "$SIP" -p "$PORT" -t "$SECS" -P 1 -J)
  timeout -k 5 $((SECS + 30)) "${ccmd[@]}" >"$log.json" 2>"$log.err"
  local rc=$?
  local ds=$(($(tcp_segs "$SNS") - s0)) dc=$(($(tcp_segs "$CNS") - c0))
  local alive=0 src=0
  for i in $(seq 20); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$spid" 2>/dev/null && alive=1
  kill "$spid" 2>/dev/null
  for i in $(seq 30); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; src=$?
  PIDS=()
  val=$("$PY" -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("failed\tno JSON from the client"); sys.exit()
if d.get("error"):
    print("failed\t" + d["error"].replace("\t", " ")); sys.exit()
try:
    print("%.3f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception:
    print("failed\tno end.sum_received in the JSON")
' "$log.json")
  if [ "$rc" -ne 0 ]; then
    local how="client exited $rc"
    [ "$rc" -gt 128 ] && how="client killed by signal $((rc - 128))"
    [ "$rc" -eq 139 ] && how="client crashed (SIGSEGV)"
    if [[ "$val" == failed* ]]; then val="$val; $how"; else val="failed	$how"; fi
  fi
  if [ "$alive" = 0 ] && [ "$src" -gt 128 ]; then # the server (iperf3 -s -1) died by a signal
    local shw="server killed by signal $((src - 128))"
    [ "$src" -eq 139 ] && shw="server crashed (SIGSEGV)"
    if [[ "$val" == failed* ]]; then val="$val; $shw"; else val="failed	$shw"; fi
  fi
  # iperf3's "getsockopt - Protocol not available": an IPPROTO_TCP option the library does
  # not answer on accelerated sockets (ENOPROTOOPT; stack/fd_tcp.c answers TCP_NODELAY,
  # keepalive and TCP_MAXSEG only; iperf3 asks for e.g. TCP_INFO).
  [[ "$val" == *"Protocol not available"* ]] &&
    val="$val (an IPPROTO_TCP getsockopt the library answers ENOPROTOOPT)"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then val="failed	client hung (timeout after $((SECS + 30))s)"; fi
  if [[ "$val" != failed* ]] && [ "$mode" = bypass ] && { [ "$ds" -gt "$QUIET" ] || [ "$dc" -gt "$QUIET" ]; }; then
    val="not-bypassed	kernel TCP segments moved: server ns +$ds, client ns +$dc"
  fi
  if [[ "$val" == failed* ]]; then
    echo "bench/iperf3: $mode round $r: ${val#*	}" >&2
    tail -n 3 "$log.err" "$log.srv" 2>/dev/null | sed 's/^/bench\/iperf3:   /' >&2
  fi
  local fig="${val%%	*}" reason=""
  [[ "$val" == *"	"* ]] && reason="${val#*	}"
  printf 'iperf3\t%s\t%s\t%s\tserver: %s | client: %s\t%s\t%s %s\n' "$mode" "$r" "$fig" \
    "${scmd[*]}" "${ccmd[*]}" "$reason" "$ds" "$dc" >>"$OUT"
  echo "bench/iperf3: round $r $mode: $fig Gbit/s (kernel TCP segments server +$ds, client +$dc)" >&2
}

for r in $(seq "$ROUNDS"); do
  for mode in kernel bypass; do one "$mode" "$r"; done
done
