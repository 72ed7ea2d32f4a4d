# Sourced by the benchmarks: two network namespaces joined by a veth pair, and their
# removal.  The caller sets SNS CNS (namespace names), SIF CIF (interfaces), SIP CIP
# (addresses), WORK (a scratch folder), PIDS (an array of the pids it starts) and defines
# die(); then calls netpair_up once.  An EXIT trap stops the pids, detaches any XDP
# program, deletes the namespaces and the scratch folder, also on failure or interrupt.

netpair_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  ip -n "$SNS" link set dev "$SIF" xdp off 2>/dev/null
  ip -n "$CNS" link set dev "$CIF" xdp off 2>/dev/null
  ip netns del "$SNS" 2>/dev/null
  ip netns del "$CNS" 2>/dev/null
  rm -rf "$WORK"
}

netpair_up() {
  trap netpair_cleanup EXIT
  trap 'exit 130' INT TERM
  ip netns add "$SNS" && ip netns add "$CNS" || die "ip netns add"
  ip link add "$SIF" netns "$SNS" type veth peer name "$CIF" netns "$CNS" || die "veth"
  ip -n "$SNS" addr add "$SIP/24" dev "$SIF"
  ip -n "$CNS" addr add "$CIP/24" dev "$CIF"
  local ns_if ns dev
  for ns_if in "$SNS:$SIF" "$CNS:$CIF"; do
    ns="${ns_if%%:*}" dev="${ns_if#*:}"
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$dev" up
    # AF_XDP copy mode on veth needs frames that fit a page; checksums computed in
    # software.  The same settings for every mode, so the kernel runs see the same wire.
    ip netns exec "$ns" ethtool -K "$dev" gro off tso off gso off tx off >/dev/null 2>&1 ||
      echo "bench: note: ethtool -K $dev failed (is ethtool installed?)" >&2
  done
  # The client keeps no TIME_WAIT: a run of short connections whose client closed first
  # (wrk with `Connection: close` races the server's FIN) left up to 14,000 of its ports in
  # TIME_WAIT for 60 s, and the next run, whichever the server, made 7,000 connections a
  # second instead of 18,000.  Runs then depend on their order; with this they do not.
  ip netns exec "$CNS" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
  ip netns exec "$CNS" ping -c 1 -W 2 "$SIP" >/dev/null || die "no ping between namespaces"
}
