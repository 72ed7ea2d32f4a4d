"""Issue 11: a process killed (SIGKILL) while it holds the shared stack's lock, many times
under load.  deadholder.c pre-forks echo workers on an accelerated listener, then forks
victims that do nothing but take the stack's lock (run its receive path, which carries the
workers' connections too, and read TCP_INFO) and kills each a few milliseconds after it
started, KILLS times.  Meanwhile kernel clients stream checksummed blocks through the
workers.  What must hold afterwards:

- no stream was corrupted: every byte echoed is the byte sent (a connection the repair
  could not trust may be reset: the client then reconnects and counts it);
- some kills did land inside the lock (the survivors logged taking it over), else the test
  proved nothing;
- the survivors serve new connections, accelerated;
- the packet pool's use (bypass-stat) comes back to where it was before the load, but for
  what the repair reports it let go of (frames of a transmit burst a death cut short).
"""
import re
import time

from .conftest import PYTHON, assert_bypassed, write_conf
from .test_hostile import pool_in_use

PORT = 7660
KILLS = 400

# NCONN connections stream blocks of random sizes for SECS seconds; each block is checked
# against what was sent.  A reset or an EOF counts and the connection is opened again.
CLIENTS = r"""
import random, socket, sys, threading, time
host, port, nconn, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
tot = {"rounds": 0, "bad": 0, "resets": 0, "bytes": 0}
lock = threading.Lock()
def run(k):
    rng = random.Random(k)
    end = time.monotonic() + secs
    s = None
    while time.monotonic() < end:
        if s is None:
            s = socket.create_connection((host, port), timeout=10)
        blk = rng.randbytes(rng.randint(1, 48 * 1024))
        try:
            s.sendall(blk)
            got = bytearray()
            while len(got) < len(blk):
                d = s.recv(len(blk) - len(got))
                if not d:
                    raise ConnectionResetError("eof")
                got += d
        except OSError:
            with lock:
                tot["resets"] += 1
            s.close()
            s = None
            continue
        with lock:
            tot["rounds"] += 1
            tot["bytes"] += len(blk)
            if bytes(got) != blk:
                tot["bad"] += 1
    if s is not None:
        s.close()
ts = [threading.Thread(target=run, args=(k,)) for k in range(nconn)]
[t.start() for t in ts]
[t.join() for t in ts]
print("clients rounds=%(rounds)d bad=%(bad)d resets=%(resets)d bytes=%(bytes)d" % tot, flush=True)
"""


def test_kill_lock_holders_under_load(netpair, cprog):
    net = netpair()
    conf = write_conf(net.dir / "dh.conf", "bypv0", [("tcp", PORT)])
    go = net.dir / "go"
    srv = net.spawn("server", [cprog("deadholder"), PORT, 2, KILLS, str(go)],
                    name="deadholder", conf=conf, env={"BYPASS_LOG": "warn"})
    srv.wait_ready("ready", timeout=30)
    net.wait_port(PORT, srv)
    pool0 = pool_in_use(srv.pid)
    before = net.tcp_segs("server")
    cli = net.spawn("client", [PYTHON, "-c", CLIENTS, net.srv_ip, PORT, 8, 10],
                    name="dh-clients", preload=False)
    time.sleep(1)
    go.write_text("go")
    srv.wait_ready("kills", timeout=60)
    assert cli.wait(timeout=60) == 0, cli.describe()
    m = re.search(r"clients rounds=(\d+) bad=(\d+) resets=(\d+) bytes=(\d+)", cli.out())
    assert m, cli.describe()
    rounds, bad, resets, nbytes = map(int, m.groups())
    kills = int(re.search(r"kills (\d+)", srv.out()).group(1))
    takeovers = srv.err().count("died while running the shared stack")
    repaired = [l for l in srv.err().splitlines() if "repair" in l]
    print("kills=%d takeovers=%d rounds=%d bad=%d resets=%d bytes=%d" % (
        kills, takeovers, rounds, bad, resets, nbytes))
    for l in repaired[:10]:
        print(l)
    assert kills == KILLS, srv.describe()
    assert bad == 0, "%d echoed blocks differed from what was sent" % bad
    assert rounds > 200, m.group(0)
    assert takeovers >= 1, "no kill landed while the victim held the lock: the test proved nothing"
    assert resets <= takeovers * 2 + 2, "more connections reset than lock holders died"
    assert_bypassed(before, net.tcp_segs("server"), rounds, "dead holders")
    # The survivors serve new connections, checked again.
    cp = net.run("client", [PYTHON, "-c", CLIENTS, net.srv_ip, PORT, 4, 2], preload=False,
                 timeout=60)
    m2 = re.search(r"clients rounds=(\d+) bad=(\d+) resets=(\d+)", cp.stdout)
    assert cp.returncode == 0 and m2, cp.stdout + cp.stderr
    assert int(m2.group(1)) > 20 and m2.group(2) == "0" and m2.group(3) == "0", m2.group(0)
    # The pool's use returns to where it was, but for the frames of transmit bursts the
    # dead cut short (the repair says how many it let go of: those the NIC had not taken
    # yet are lost, and leaked) and a few a holder killed between unlinking a buffer and
    # freeing it leaves.  (The frame a receive burst was handing to lwIP is freed by the
    # repair when no queue took it; it leaked before.)
    let_go = sum(int(x) for x in re.findall(r"repair: (\d+) frame\(s\) of a cut transmit", srv.err()))
    bound = pool0 + 16 + let_go + takeovers
    deadline = time.monotonic() + 10
    pool = pool_in_use(srv.pid)
    while pool > bound and time.monotonic() < deadline:
        time.sleep(0.5)
        pool = pool_in_use(srv.pid)
    print("pool in use: %d before, %d after (%d frames of cut bursts let go of)" % (
        pool0, pool, let_go))
    assert pool <= bound, "pool use %d, was %d before the kills (bound %d)" % (pool, pool0, bound)
    assert srv.stop() == 0, srv.describe()
