#!/bin/bash
# Proves the af_xdp backend on a veth pair between two network namespaces and measures
# the latency floor: byp-reflect (DPDK af_xdp, no TCP/IP stack) in ns A against a kernel
# UDP ping-pong client in ns B, then the same client against a kernel UDP echo in ns A.
# Checks on the way that ARP/ICMP still reach ns A's kernel (ping) while the steered port
# bypasses it (nstat UdpInDatagrams in ns A does not move).
#
#   reflect_test.sh BUILD_DIR [COUNT] [extra byp-reflect args, e.g. --no-huge]
#
# Environment: PEER_XDP=1 attaches a pass program to the peer; NO_TX_OFF=1 skips the
# checksum workaround below (the client then drops every reply: UdpInCsumErrors); REFLECT_CPU / CLIENT_CPU pin the reflector / servers and the client.
# REFLECT_OUT=FILE also writes the four ping-pongs' figures there, one TSV line each:
# run (xdp, xdp-spin, kernel, kernel-spin), p50, p99, p99.9, min (half-RTT us), command.
# Needs root.  Creates namespaces byp-spike-a/-b (10.99.0.1/24, 10.99.0.2/24) and deletes
# them, with their veth pair and XDP programs, on exit, also on failure.
set -u
BUILD=${1:?usage: reflect_test.sh BUILD_DIR [COUNT] [byp-reflect args]}
COUNT=${2:-100000}
shift; [ $# -gt 0 ] && shift
EXTRA=("$@")
NSA=byp-spike-a NSB=byp-spike-b VA=byp-va VB=byp-vb PORT=9999 KPORT=9998
REFLECT=$BUILD/nicbackend/byp-reflect PP=$BUILD/nicbackend/byp-udp-pingpong
PIDS=()
RPIN=() CPIN=()
[ -n "${REFLECT_CPU:-}" ] && RPIN=(taskset -c "$REFLECT_CPU")
[ -n "${CLIENT_CPU:-}" ] && CPIN=(taskset -c "$CLIENT_CPU")
LOG=$(mktemp -d /tmp/byp-reflect.XXXXXX)

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    ip netns exec $NSA ip link set dev $VA xdp off 2>/dev/null
    ip netns exec $NSB ip link set dev $VB xdp off 2>/dev/null
    ip netns del $NSA 2>/dev/null
    ip netns del $NSB 2>/dev/null
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fail() { echo "FAIL: $*"; exit 1; }
udp_in() { ip netns exec $NSA nstat -az UdpInDatagrams | awk '/UdpInDatagrams/ {print $2}'; }

cleanup
ip netns add $NSA && ip netns add $NSB || fail "netns"
ip link add $VA netns $NSA type veth peer name $VB netns $NSB || fail "veth"
ip -n $NSA addr add 10.99.0.1/24 dev $VA
ip -n $NSB addr add 10.99.0.2/24 dev $VB
ip -n $NSA link set $VA up; ip -n $NSA link set lo up
ip -n $NSB link set $VB up; ip -n $NSB link set lo up
# Frames sent with XDP_TX or XDP_REDIRECT into a veth are dropped unless the peer has an
# XDP program (it turns on the peer's NAPI).  AF_XDP copy-mode transmit goes through the
# ordinary xmit path and does not need it (measured on 6.x), so this is opt-in: PEER_XDP=1.
if [ -n "${PEER_XDP:-}" ]; then
    ip netns exec $NSB ip link set dev $VB xdp obj "$BUILD/nicbackend/xdp_pass.bpf.o" sec xdp \
        || fail "pass program on $VB"
fi
# The kernel client's UDP checksums are left partial by veth's tx offload: have them
# computed, so that the reflected frames (transmitted as is) carry a valid checksum.
if [ -z "${NO_TX_OFF:-}" ]; then
    ip netns exec $NSB ethtool -K $VB tx off >/dev/null 2>&1 || echo "note: ethtool -K tx off failed"
fi
ip netns exec $NSB ping -c 1 -W 2 10.99.0.1 >/dev/null || fail "ping before start"

ip netns exec $NSA "${RPIN[@]}" "$REFLECT" -i $VA -p $PORT -t 600 "${EXTRA[@]}" >"$LOG/reflect.out" 2>"$LOG/reflect.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q '^ready' "$LOG/reflect.out" && break; sleep 0.1; done
cat "$LOG/reflect.out" "$LOG/reflect.err"
grep -q '^ready' "$LOG/reflect.out" || fail "byp-reflect did not start"
ip netns exec $NSA ip -d link show $VA | grep -o 'prog/xdp[^ ]* id [0-9]*'

ip netns exec $NSB ping -c 3 -i 0.2 -W 2 10.99.0.1 >/dev/null || fail "ping (ICMP/ARP to the kernel) with XDP attached"
echo "ok: ping reaches ns A's kernel with the steering program attached"

before=$(udp_in)
echo "byp-reflect (DPDK af_xdp, raw frames):"
ip netns exec $NSB "${CPIN[@]}" "$PP" client 10.99.0.1 $PORT -n "$COUNT" | tee "$LOG/xdp.txt" || fail "ping-pong via af_xdp"
ip netns exec $NSB "${CPIN[@]}" "$PP" client 10.99.0.1 $PORT -n "$COUNT" --spin | tee "$LOG/xdp-spin.txt" || fail "ping-pong via af_xdp (spin)"
after=$(udp_in)
echo "ns A UdpInDatagrams: before $before after $after"
[ "$before" = "$after" ] || fail "ns A's kernel saw UDP datagrams of the steered port"
echo "ok: the steered port bypassed ns A's kernel"

# Another port on the same interface still reaches the kernel.
ip netns exec $NSA "${RPIN[@]}" "$PP" server $KPORT >"$LOG/ksrv.out" 2>&1 &
PIDS+=($!)
sleep 0.3
ip netns exec $NSB "${CPIN[@]}" "$PP" client 10.99.0.1 $KPORT -n 100 -w 0 >/dev/null || fail "unsteered port with XDP attached"
echo "ok: an unsteered UDP port still reaches ns A's kernel"

kill "${PIDS[0]}"; wait "${PIDS[0]}"
cat "$LOG/reflect.out" | tail -1
ip netns exec $NSA ip link show $VA | grep -q 'xdp' && fail "XDP program left on $VA after byp-reflect exited"
echo "ok: byp-reflect detached its XDP program on exit"

echo "kernel UDP echo (same namespaces, same client):"
ip netns exec $NSB "${CPIN[@]}" "$PP" client 10.99.0.1 $KPORT -n "$COUNT" | tee "$LOG/kernel.txt"
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null
ip netns exec $NSA "${RPIN[@]}" "$PP" server $KPORT --spin >/dev/null 2>&1 &
PIDS[1]=$!
sleep 0.3
ip netns exec $NSB "${CPIN[@]}" "$PP" client 10.99.0.1 $KPORT -n "$COUNT" --spin | tee "$LOG/kernel-spin.txt"
if [ -n "${REFLECT_OUT:-}" ]; then
    : >"$REFLECT_OUT"
    for run in xdp xdp-spin kernel kernel-spin; do
        port=$PORT spin=""
        case $run in kernel*) port=$KPORT ;; esac
        case $run in *-spin) spin=" --spin" ;; esac
        srv="ip netns exec $NSA ${RPIN[*]} $REFLECT -i $VA -p $PORT -t 600 ${EXTRA[*]}"
        case $run in kernel*) srv="ip netns exec $NSA ${RPIN[*]} $PP server $KPORT$spin" ;; esac
        awk -v run="$run" -v cmd="server: $srv | client: ip netns exec $NSB ${CPIN[*]} $PP client 10.99.0.1 $port -n $COUNT$spin" \
            '/^half-RTT us:/ { printf "%s\t%s\t%s\t%s\t%s\t%s\n", run, $4, $6, $8, $10, cmd }' \
            "$LOG/$run.txt" >>"$REFLECT_OUT"
    done
fi
echo "PASS"
