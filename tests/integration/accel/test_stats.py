"""Issue 4, live stats: an accelerated redis-server publishes /dev/shm/bypass.<pid> (0600),
`build/bypass-stat` lists it, shows its listener and the clients' connections, its counters
move with traffic, the file goes with the process, and stale files are removed."""

import os
import stat
import struct
import subprocess
import time
from pathlib import Path

from .conftest import PYTHON, REPO, stat_json
from .test_redis import PORT, accel_redis

STAT = REPO / "build" / "bypass-stat"
MAGIC = 0x3154415453505942
CLIENTS = 5


def bypass_stat(*args):
    return subprocess.run([str(STAT)] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=30)


def snapshot(pid):
    st, msg = stat_json(pid)
    assert st is not None, msg
    return st


def wait_for(pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


HOLDER = """
import socket, sys, time
socks = [socket.create_connection((sys.argv[1], int(sys.argv[2]))) for _ in range(int(sys.argv[3]))]
for s in socks:
    s.sendall(b"PING\\r\\n"); s.recv(64)
print("ready", " ".join(str(s.getsockname()[1]) for s in socks), flush=True)
time.sleep(120)
"""


def test_stats_of_accelerated_redis(netpair):
    assert STAT.is_file(), "build/bypass-stat missing: cmake --build build"
    net = netpair()
    srv, _, _ = accel_redis(net)
    path = Path("/dev/shm/bypass.%d" % srv.pid)
    wait_for(path.exists, str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    cp = bypass_stat()
    assert cp.returncode == 0, cp.stderr
    assert any(l.split()[:2] == [str(srv.pid), "redis-server"] for l in cp.stdout.splitlines()), cp.stdout

    s = snapshot(srv.pid)
    assert s["backend"] == "af_xdp" and s["interface"] == "bypv0"
    assert s["address"] == "%s/24" % net.srv_ip
    listeners = [k for k in s["sockets"] if k["state"] == "listen"]
    assert [k["local"].rsplit(":", 1)[1] for k in listeners] == [str(PORT)], s["sockets"]

    holder = net.spawn("client", [PYTHON, "-c", HOLDER, net.srv_ip, PORT, CLIENTS], name="holder")
    holder.wait_ready()
    ports = [l for l in holder.out().splitlines() if l.startswith("ready")][0].split()[1:]
    want = sorted("%s:%s" % (net.cli_ip, p) for p in ports)

    def established():
        est = [k for k in snapshot(srv.pid)["sockets"] if k["state"] == "established"]
        return sorted(k["remote"] for k in est) == want and est
    est = wait_for(established, "%d established sockets from %s" % (CLIENTS, want))
    for k in est:
        assert k["local"] == "%s:%d" % (net.srv_ip, PORT)
        assert k["rx_bytes"] >= 6 and k["rx_pkts"] >= 1 and k["tx_bytes"] >= 7, k
    holder.stop()
    wait_for(lambda: not [k for k in snapshot(srv.pid)["sockets"] if k["state"] != "listen"],
             "the clients' sockets to leave the table")

    before = snapshot(srv.pid)
    requests = 10000
    cp = net.run("client", ["redis-benchmark", "-h", net.srv_ip, "-p", PORT, "-n", requests // 2,
                            "-c", 10, "-t", "set,get", "-q"], timeout=120)
    assert cp.returncode == 0, cp.stderr
    time.sleep(0.3)   # a progress-thread sample
    after = snapshot(srv.pid)
    b, a = before["stack"], after["stack"]
    for f in ("rx_pkts", "tx_pkts"):
        assert a[f] - b[f] >= requests, (f, b[f], a[f])
    assert a["rx_bytes"] - b["rx_bytes"] >= requests * 20
    assert a["tx_bytes"] > b["tx_bytes"]
    assert after["queues"][0]["rx_pkts"] >= a["rx_pkts"] - 1000
    assert a["pool_size"] > 0 and 0 < a["pool_in_use"] <= a["pool_size"]
    assert after["samples"] > before["samples"]
    assert after["port"]["ipackets"] > before["port"]["ipackets"]

    assert srv.stop() == 0, srv.describe()
    assert not path.exists(), "stats file left after exit"
    cp = bypass_stat(srv.pid)
    assert cp.returncode == 1 and "no accelerated process" in cp.stderr


def test_stale_file_is_removed():
    assert STAT.is_file(), "build/bypass-stat missing: cmake --build build"
    p = subprocess.Popen(["true"])
    p.wait()
    dead = p.pid   # gone; not reused within this test's few milliseconds
    path = Path("/dev/shm/bypass.%d" % dead)
    fd = os.open(str(path), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.write(fd, struct.pack("<QII", MAGIC, 1, 4096) + bytes(4096 - 16))
    os.close(fd)
    try:
        cp = bypass_stat()
        assert cp.returncode == 0
        assert str(dead) not in [l.split()[0] for l in cp.stdout.splitlines()[1:] if l.split()]
        assert "removed stale" in cp.stderr and str(path) in cp.stderr, cp.stderr
        assert not path.exists()
    finally:
        if path.exists():
            path.unlink()
    # A file that is not ours is left alone.
    other = Path("/dev/shm/bypass.%d" % dead)
    other.write_bytes(b"not a stats file")
    try:
        bypass_stat()
        assert other.exists()
    finally:
        other.unlink()


def test_next_start_removes_a_killed_process_file(netpair):
    """A process killed by SIGKILL cannot remove its stats file; the next accelerated start
    of the same user removes it (and leaves a live process's file alone)."""
    net = netpair()
    first, _, _ = accel_redis(net)
    dead_path = Path("/dev/shm/bypass.%d" % first.pid)
    wait_for(dead_path.exists, str(dead_path))
    first.popen.kill()
    first.popen.wait(timeout=10)
    assert dead_path.exists(), "SIGKILL cannot run the library's exit path"
    # a live process's file: our own (pid, start time) stays listed
    live = subprocess.Popen(["sleep", "60"])
    live_path = Path("/dev/shm/bypass.%d" % live.pid)
    ticks = int(Path("/proc/%d/stat" % live.pid).read_text().rsplit(")", 1)[1].split()[19])
    hdr = struct.pack("<QIIIIIIiIQ", MAGIC, 1, 4096, 0, 0, 0, 0, live.pid, 0, ticks)
    live_path.write_bytes(hdr + bytes(4096 - len(hdr)))
    try:
        second, _, _ = accel_redis(net)
        wait_for(lambda: Path("/dev/shm/bypass.%d" % second.pid).exists(), "second's file")
        assert not dead_path.exists(), "the killed process's stats file is still there"
        assert live_path.exists(), "a live process's file was removed"
    finally:
        live.kill()
        live.wait()
        if live_path.exists():
            live_path.unlink()
