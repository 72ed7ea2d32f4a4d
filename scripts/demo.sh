#!/usr/bin/env bash
# Demo: unmodified redis-server (and sockperf) accelerated by libbypass.so, side by side with
# the kernel, over a veth pair between two network namespaces that this script creates and
# removes.  It runs scripts/setup.sh (packages, lwIP, hugepages, build), then a short pass
# of bench/tcp/run.sh: sockperf TCP ping-pong (kernel blocking, kernel busy-poll, bypass)
# and redis-benchmark -P1/-P16 (kernel, bypass), and prints the comparison table.  A bypass
# run whose traffic went through the kernel (the namespace's kernel TCP counters moved) is
# reported as "not-bypassed", never as a number.
#
#   scripts/demo.sh [SECONDS [ROUNDS [REQUESTS]]]      defaults: 3 1 100000
#
# Needs root (namespaces, XDP).  The full benchmark: bench/tcp/run.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh >/dev/null || { echo "demo: setup/build failed (see build/setup-build.log)" >&2; exit 1; }
exec bash bench/tcp/run.sh "${1:-3}" "${2:-1}" "${3:-100000}"
