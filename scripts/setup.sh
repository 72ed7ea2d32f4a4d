#!/usr/bin/env bash
# One-command setup for bypass on Debian 12: packages, lwIP source, hugepages,
# bpffs, and the build. Idempotent: a second run installs nothing, fetches
# nothing and only rebuilds what changed. Run as root (CI does).
#
# Environment:
#   BYPASS_SETUP_NO_BUILD=1   stop before the build (packages/system only)
#   BYPASS_HUGEPAGES=N        2 MB hugepages to reserve (default 512)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PACKAGES=(
  build-essential cmake pkg-config
  libdpdk-dev dpdk
  libnl-3-dev libnl-route-3-dev libconfig-dev
  libbpf-dev libxdp-dev xdp-tools bpftool clang llvm
  python3 python3-pytest python3-matplotlib python3-scapy
  redis-server redis-tools memcached libmemcached-tools
  sockperf iperf3 nginx-light wrk socat postgresql-15 nodejs curl apache2-bin haproxy lighttpd
  iproute2 procps psmisc ethtool iputils-ping
  python3-scapy
  xz-utils ca-certificates debian-archive-keyring
)
HUGEPAGES="${BYPASS_HUGEPAGES:-512}"
LWIP_DIR="$ROOT/.deps/lwip"
LWIP_CACHE="$ROOT/.deps/cache"

note() { printf 'setup: %s\n' "$*" >&2; }
step() { printf 'setup: %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    note "not root and no sudo: package install and system steps may fail"
  fi
fi

# --- packages ---------------------------------------------------------------

# Prints the packages of PACKAGES that are not installed.
missing_packages() {
  local p st
  for p in "${PACKAGES[@]}"; do
    st="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
    [ "${st:0:2}" = "ii" ] || printf '%s\n' "$p"
  done
}

# True when apt's package lists are absent or older than a day.
apt_lists_stale() {
  local newest
  newest="$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n1)"
  [ -z "$newest" ]
}

install_packages() {
  local missing
  missing="$(missing_packages)"
  if [ -z "$missing" ]; then
    step "packages: all ${#PACKAGES[@]} present"
    return 0
  fi
  # shellcheck disable=SC2086
  step "packages: installing $(echo $missing)"
  if apt_lists_stale || ! apt-cache policy $missing 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    $SUDO apt-get update -qq
  fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    $missing >/dev/null || {
      # A stale list can name package versions the mirror no longer has.
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        $missing >/dev/null
    }
  missing="$(missing_packages)"
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    note "packages still missing: $(echo $missing)"
    return 1
  fi
}

# --- lwIP source ------------------------------------------------------------

# Downloads Debian's lwip source package with a private apt configuration
# (own sources.list, lists and cache: the machine's apt state is untouched)
# and unpacks the upstream tarball to .deps/lwip.
fetch_lwip() {
  if [ -f "$LWIP_DIR/src/include/lwip/opt.h" ]; then
    step "lwip: present in .deps/lwip"
    return 0
  fi
  step "lwip: fetching Debian source package"
  local apt_dir="$LWIP_CACHE/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$LWIP_CACHE/src"
  printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main\n' \
    >"$apt_dir/sources.list"
  local aptopts=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir"
    -o "Dir::Cache::archives=$apt_dir/archives"
    -o "APT::Sandbox::User=root"
  )
  local orig
  orig="$(find "$LWIP_CACHE/src" -maxdepth 1 -name 'lwip_*.orig.tar.*' | head -n1)"
  if [ -z "$orig" ]; then
    apt-get -qq "${aptopts[@]}" update >/dev/null
    (cd "$LWIP_CACHE/src" && apt-get -qq "${aptopts[@]}" source --download-only lwip >/dev/null)
    orig="$(find "$LWIP_CACHE/src" -maxdepth 1 -name 'lwip_*.orig.tar.*' | head -n1)"
  fi
  if [ -z "$orig" ]; then
    note "lwip: source package download failed"
    return 1
  fi
  local tmp
  tmp="$(mktemp -d "$ROOT/.deps/lwip-unpack.XXXXXX")"
  tar -xf "$orig" -C "$tmp"
  local top
  top="$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n1)"
  if [ ! -f "$top/src/include/lwip/opt.h" ]; then
    note "lwip: unexpected tarball layout in $orig"
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$LWIP_DIR"
  mv "$top" "$LWIP_DIR"
  rm -rf "$tmp"
  step "lwip: unpacked $(basename "$orig") to .deps/lwip"
}

# --- system: hugepages, hugetlbfs, bpffs (each may fail) -------------------

setup_system() {
  local cur
  cur="$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)"
  if [ "$cur" -lt "$HUGEPAGES" ]; then
    if ! echo "$HUGEPAGES" | $SUDO tee /proc/sys/vm/nr_hugepages >/dev/null 2>&1; then
      note "hugepages: cannot set vm.nr_hugepages (DPDK will fall back to --no-huge)"
    fi
    cur="$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)"
    [ "$cur" -ge "$HUGEPAGES" ] || note "hugepages: only $cur of $HUGEPAGES 2 MB pages reserved"
  fi
  if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
    $SUDO mkdir -p /dev/hugepages 2>/dev/null || true
    $SUDO mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null ||
      note "hugepages: cannot mount hugetlbfs at /dev/hugepages"
  fi
  if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
    $SUDO mount -t bpf bpf /sys/fs/bpf 2>/dev/null ||
      note "bpffs: cannot mount at /sys/fs/bpf"
  fi
  step "system: hugepages=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo ?)"
}

# --- build ------------------------------------------------------------------

build() {
  step "build: cmake (RelWithDebInfo) into build/"
  local log="$ROOT/build/setup-build.log"
  mkdir -p "$ROOT/build"
  if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
         cmake --build build -j2; } >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    note "build FAILED (full log: build/setup-build.log)"
    return 1
  fi
  grep -E 'warning:' "$log" | sort -u | head -n 20 >&2 || true
  step "build: ok"
}

install_packages
fetch_lwip
setup_system
if [ "${BYPASS_SETUP_NO_BUILD:-0}" != "1" ]; then
  build
fi
