#!/usr/bin/env bash
# Demo: unmodified sockperf, redis-server and iperf3 accelerated by libbypass.so, side by
# side with the kernel, over veth pairs between network namespaces that the benchmarks
# create and remove.  It runs scripts/setup.sh (packages, lwIP, hugepages, build), then the
# quick benchmark suite (bench/run.sh --quick: sockperf TCP ping-pong kernel blocking /
# kernel busy-poll / bypass, redis-benchmark -P1/-P16, iperf3 one stream, the passthrough
# overhead and the raw-frame floor) and prints its summary table.  A bypass run whose
# traffic went through the kernel (the namespaces' kernel TCP counters moved) is reported
# as "not-bypassed", never as a number.
#
#   scripts/demo.sh
#
# Needs root (namespaces, XDP).  The full suite: bench/run.sh (--help).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh >/dev/null || { echo "demo: setup/build failed (see build/setup-build.log)" >&2; exit 1; }
# bench/run.sh prints summary.md at the end; its results directory is named on stderr.
exec bash bench/run.sh --quick
