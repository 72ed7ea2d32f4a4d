#!/usr/bin/env bash
# ThreadSanitizer run of the 8-thread stress (issue 12): libbypass.so and
# libbypass-engine.so (lwIP included) built with -fsanitize=thread in build-tsan/, then
# tests/integration/accel/threads_stress.c (8 threads, 64 accelerated connections, closed
# and reopened and shut down under blocked threads) against a kernel echo server in a
# namespace pair, as test_capacity.py's thread test does; then closerace.c (close, dup2 and
# close_range racing shutdown, send, recv and getsockopt on the same fd, TCP and UDP), as test_close_race.py.  DPDK is not instrumented: races
# inside it are not seen, races between our code and it are seen from our side only.
#
#   bash scripts/tsan.sh [SECONDS]          default 60; needs root
#
# Reports go to build-tsan/tsan-report/tsan.PID; a summary (one line per distinct report:
# kind and the top frames of our code) is printed.  Known false positives are suppressed
# in scripts/tsan.supp, each with the reason.  Exit status: 0 when no report remained and
# the stress itself passed, 1 otherwise.  The namespaces, the processes and the XDP
# programs it made are removed on exit, also on failure or interrupt.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
B="$ROOT/build-tsan"
SECS="${1:-60}"
die() { echo "tsan: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root"
TSAN_RT="$(gcc -print-file-name=libtsan.so)"
[ -e "$TSAN_RT" ] || die "no libtsan for gcc (apt-get install libtsan2)"

mkdir -p "$B"
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" > "$B/tsan-cmake.log" 2>&1 ||
  die "cmake failed: $B/tsan-cmake.log"
cmake --build "$B" -j2 --target bypass bypass-engine > "$B/tsan-build.log" 2>&1 ||
  die "build failed: $B/tsan-build.log"
XDP_PASS="$ROOT/build/nicbackend/xdp_pass.bpf.o"
[ -f "$XDP_PASS" ] || die "$XDP_PASS missing: build the normal tree first (scripts/setup.sh)"

SNS="byps-tsan-$$" CNS="bypc-tsan-$$" SIF=bypt0 CIF=bypt1 SIP=10.77.247.1 CIP=10.77.247.2
PORT=7600
WORK="$(mktemp -d /tmp/bypass-tsan.XXXXXX)"
PIDS=()
. "$ROOT/bench/lib/netpair.sh"
netpair_up
# The server (kernel) end needs an XDP program to receive what the client's AF_XDP socket
# sends; the client end belongs to the library.
ip -n "$SNS" link set dev "$SIF" xdpdrv obj "$XDP_PASS" sec xdp || die "cannot attach xdp_pass"

gcc -O2 -g -Wall -o "$WORK/epoll_server" "$ROOT/tests/integration/accel/epoll_server.c" &&
  gcc -O2 -g -Wall -pthread -o "$WORK/threads_stress" "$ROOT/tests/integration/accel/threads_stress.c" &&
  gcc -O2 -g -Wall -pthread -o "$WORK/closerace" "$ROOT/tests/integration/accel/closerace.c" ||
  die "cannot build the test programs"
ip netns exec "$SNS" "$WORK/epoll_server" "$PORT" lt > "$WORK/echo.out" 2>&1 &
PIDS+=("$!")
ip netns exec "$SNS" "$WORK/closerace" serve $((PORT + 1)) > "$WORK/race-peer.out" 2>&1 &
PIDS+=("$!")
for i in $(seq 50); do grep -q ready "$WORK/echo.out" && grep -q ready "$WORK/race-peer.out" && break; sleep 0.1; done
printf 'interface = "%s";\nrules = ( { action = "accelerate"; proto = "tcp"; port = %d; },
  { action = "accelerate"; proto = "tcp"; port = %d; },
  { action = "accelerate"; proto = "udp"; port = %d; } );\n' \
  "$CIF" "$PORT" $((PORT + 1)) $((PORT + 1)) > "$WORK/tsan.conf"

REP="$B/tsan-report"
rm -rf "$REP" && mkdir -p "$REP"
# handle_*=0: TSan installs no handlers of its own for deadly signals; it would call the
# library's sigaction wrapper (instrumented) from inside its own start-up and crash there.
# history_size: deeper stacks for the racing access' partner.
export TSAN_OPTIONS="log_path=$REP/tsan halt_on_error=0 exitcode=0 history_size=4 second_deadlock_stack=1 handle_segv=0 handle_sigbus=0 handle_abort=0 handle_sigill=0 handle_sigfpe=0 suppressions=$ROOT/scripts/tsan.supp"
echo "tsan: threads_stress for ${SECS}s under ThreadSanitizer (reports in $REP)"
ip netns exec "$CNS" env LD_PRELOAD="$TSAN_RT:$B/libbypass.so" BYPASS_CONFIG="$WORK/tsan.conf" \
  "$WORK/threads_stress" "$SIP" "$PORT" "$SECS" > "$WORK/stress.out" 2> "$WORK/stress.err"
rc=$?
for proto in tcp udp; do
  for closer in close dup2 close_range; do
    echo "tsan: closerace $proto by $closer, 500 rounds"
    ip netns exec "$CNS" env LD_PRELOAD="$TSAN_RT:$B/libbypass.so" BYPASS_CONFIG="$WORK/tsan.conf" \
      "$WORK/closerace" race $proto "$SIP" $((PORT + 1)) 500 $closer > "$WORK/race-$proto.out" \
      2>> "$WORK/stress.err"
    r=$?
    echo "tsan: closerace $proto by $closer exit $r: $(grep -c '^op=' "$WORK/race-$proto.out") operations reported"
    [ "$r" -eq 0 ] || rc=$r
  done
done
unset TSAN_OPTIONS
cp "$WORK/stress.out" "$WORK/stress.err" "$REP/"
echo "tsan: stress exit $rc: $(tail -1 "$WORK/stress.out")"
grep -h "^bypass:" "$WORK/stress.err" | head -5

# closerace.c races close() against calls on the same fd on purpose: TSan's model of fds
# reports that race of the test program itself (a report on a file descriptor with no frame
# of ours in it).  Those are counted apart; every other report counts.
summarize() {
  awk -v root="$ROOT/" -v want="$1" '
    function flush() {
      if (kind == "") return
      own = (fdloc && !ours)
      if ((want == "own") == own) print kind " | " frames
      kind = ""
    }
    /^WARNING: ThreadSanitizer/ { flush(); kind = $0; sub(/^WARNING: ThreadSanitizer: /, "", kind); sub(/ \(pid=.*/, "", kind); frames = ""; nf = 0; fdloc = 0; ours = 0 }
    /Location is file descriptor/ { fdloc = 1 }
    /^    #[0-9]+ / && ($0 ~ /\/(stack|preload|nicbackend|config)\//) { ours = 1 }
    /^    #[0-9]+ / && nf < 4 && ($0 ~ /stack\/|preload\/|nicbackend\/|config\/|lwip/) {
      loc = $3; sub(root, "", loc); frames = frames (nf ? " < " : "") $2 " " loc; nf++ }
    END { flush() }' "$REP"/tsan.* 2>/dev/null
}
own=$(summarize own | wc -l)
n=$(summarize lib | wc -l)
echo "tsan: $n report(s); $own on the test program's own close/call race (intended, not counted)"
# One line per distinct report: its kind and the first frames in our sources.
summarize lib | sort | uniq -c | sort -rn
[ "$rc" -eq 0 ] && [ "$n" -eq 0 ]
