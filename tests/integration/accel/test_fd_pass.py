"""Accelerated connections sent to another process over a UNIX socket (SCM_RIGHTS), as
node's cluster hands each connection its primary accepts to a worker it exec'd.  The worker
does not run this process's stack, so the connection goes to the kernel before the send
(TCP_REPAIR, with the bytes the primary has not read): the worker reads the rest of the
request and answers, as on the kernel.  Before, the worker got the unconnected kernel
socket under the accelerated fd (ENOTCONN), and node's cluster served nothing."""
import hashlib
import json
import re
import shutil

import pytest

from .conftest import ASK, PYTHON, assert_bypassed, bypass_lines, json_exchange, write_conf

PORT = 7360
N = 5

SERVER = r"""
import json, os, socket, subprocess, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
WORKER = r'''
import os, socket, sys
u = socket.socket(fileno=int(sys.argv[1]))
for i in range(int(sys.argv[2])):
    msg, fds, _, _ = socket.recv_fds(u, 100, 1)
    c = socket.socket(fileno=fds[0])
    rest = b""
    while not rest.endswith(b"\n"):
        d = c.recv(100)
        if not d:
            break
        rest += d
    c.sendall(b"worker got " + msg + rest)
    c.close()
'''
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(8)
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
worker = subprocess.Popen([sys.executable, "-c", WORKER, str(b.fileno()), str(n)],
                          pass_fds=[b.fileno()])
b.close()
print("ready", flush=True)
for i in range(n):
    c, _ = ls.accept()
    first = c.recv(6)                 # the rest of the request stays queued
    socket.send_fds(a, [first], [c.fileno()])
    c.close()
print(json.dumps({"worker": worker.wait(30)}), flush=True)
"""

CLIENT = ASK + r"""
import json, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(json.dumps([ask(host, port, b"hello world %d\n" % i).decode() for i in range(n)]))
"""


def test_connection_sent_to_an_exec_worker(netpair):
    net = netpair()
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", PORT)])
    want = ["worker got hello world %d\n" % i for i in range(N)]
    for mode, c in (("kernel", None), ("accel", conf)):
        srv, out = json_exchange(net, SERVER, CLIENT, PORT, conf=c, name="fdpass-" + mode,
                                 args=(N,))
        assert srv == {"worker": 0}, (mode, srv)
        assert json.loads(out.strip().splitlines()[-1]) == want, (mode, out)


NODE_CLUSTER = r"""
const cluster = require('cluster');
const http = require('http');
const crypto = require('crypto');
const BIG = Buffer.concat(Array(32768).fill(crypto.createHash('sha256').update('seed').digest()));
if (cluster.isPrimary) {
  let up = 0;
  for (let i = 0; i < 2; i++)
    cluster.fork().on('listening', () => { if (++up == 2) console.log('ready'); });
  cluster.on('exit', (w, code, sig) => console.error('worker died ' + code + ' ' + sig));
} else {
  http.createServer((req, res) => {
    res.writeHead(200);
    res.end(req.url == '/big' ? BIG : 'pid ' + process.pid + '\n');
  }).listen(parseInt(process.argv[2]));
}
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="nodejs is not installed")
def test_node_cluster_round_robin(netpair):
    """node's cluster module, its default scheduling: the primary accepts (accelerated) and
    sends each connection to one of its two exec'd workers.  Both workers answer, a 1 MB
    body is intact, no worker dies (the connections reach them through the kernel)."""
    net = netpair()
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", PORT + 1)])
    script = net.dir / "cluster.js"
    script.write_text(NODE_CLUSTER)
    srv = net.spawn("server", ["node", str(script), str(PORT + 1)], name="node-cluster",
                    conf=conf, env={"NODE_CLUSTER_SCHED_POLICY": "rr"})
    srv.wait_ready()
    url = "http://%s:%d" % (net.srv_ip, PORT + 1)
    cp = net.run("client", ["sh", "-c", "curl -sS -m 10 %s/big | sha256sum; for i in $(seq 20); "
                            "do curl -sS -m 5 %s/; done" % (url, url)], timeout=60)
    lines = cp.stdout.split("\n")
    want = hashlib.sha256(hashlib.sha256(b"seed").digest() * 32768).hexdigest()
    assert lines[0].split()[0] == want, cp.stdout + srv.describe()
    pids = {l for l in lines[1:] if l.startswith("pid ")}
    assert len([l for l in lines[1:] if l.startswith("pid ")]) == 20 and len(pids) == 2, (
        cp.stdout + srv.describe())
    assert srv.poll() is None and "worker died" not in srv.err(), srv.describe()
    srv.stop()


# A listener passed to another process: HAProxy's seamless reload (`expose-fd listeners`),
# socket-passing supervisors.  The sender keeps its copy and stops accepting; the receiver
# accepts.  On the kernel both hold one socket and the receiver gets every new connection.
LISTENER_SERVER = r"""
import json, os, socket, subprocess, sys
port, n, how = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
WORKER = r'''
import socket, sys
u = socket.socket(fileno=int(sys.argv[1]))
if sys.argv[3] == "send":
    _, fds, _, _ = socket.recv_fds(u, 10, 1)
    ls = socket.socket(fileno=fds[0])
else:
    ls = socket.socket(fileno=3)    # posix_spawn's file actions put it there
ls.settimeout(20)
served = 0
try:
    for i in range(int(sys.argv[2])):
        c, _ = ls.accept()
        c.settimeout(5)
        data = b""
        while not data.endswith(b"\n"):
            d = c.recv(100)
            if not d:
                break
            data += d
        c.sendall(b"worker got " + data)
        c.close()
        served += 1
except OSError as e:
    print("worker: %s" % e, file=sys.stderr, flush=True)
u.sendall(b"%d" % served)
'''
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(64)
print("ready", flush=True)
c1, _ = ls.accept()                 # kept by this process, which accepts nothing more
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
if how == "send":
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(b.fileno()), str(n), how],
                              pass_fds=[b.fileno()])
    socket.send_fds(a, [b"L"], [ls.fileno()])
    wait = lambda: worker.wait(30)
else:
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", WORKER, "4", str(n), how],
                         os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, ls.fileno(), 3),
                                                   (os.POSIX_SPAWN_DUP2, b.fileno(), 4)])
    wait = lambda: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
b.close()
c1.sendall(b"passed\n")
echoed = 0
while True:
    d = c1.recv(65536)
    if not d:
        break
    c1.sendall(d)
    echoed += len(d)
print(json.dumps({"worker": wait(), "served": int(a.recv(10) or b"-1"),
                  "echoed": echoed}), flush=True)
"""

LISTENER_CLIENT = ASK + r"""
import json, os, sys, time
host, port, n, rounds, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
c1 = socket.create_connection((host, port), timeout=10)
got = b""
while not got.endswith(b"passed\n"):
    got += c1.recv(100)
answers = []
for i in range(n):
    try:
        answers.append(ask(host, port, b"hello %d\n" % i, timeout=5).decode())
    except OSError as e:
        answers.append("error %s" % e)
print("phase2", flush=True)
while not os.path.exists(go):       # the test reads the kernel's counters meanwhile
    time.sleep(0.01)
blk = b"x" * 64
for i in range(rounds):
    c1.sendall(blk)
    r = b""
    while len(r) < len(blk):
        r += c1.recv(len(blk) - len(r))
    assert r == blk
c1.close()
print(json.dumps(answers), flush=True)
"""


@pytest.mark.parametrize("how", ["send", "spawn"])
def test_listener_sent_to_another_process(netpair, how):
    """The process that listens (accelerated) sends its listener to a worker it exec'd (or
    posix_spawns one that inherits it) and keeps it without accepting again, as HAProxy's
    old process does in a seamless reload.
    Every new connection is the worker's, as on the kernel; the connection the sender
    accepted before stays on the stack (the kernel's counters stay still for it).  Before,
    the new connections' SYNs were still steered to the sender's stack, which completed
    the handshakes and queued them for an accept that never came: the clients hung."""
    net = netpair()
    port, n, rounds = PORT + 2, 20, 2000
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", port)])
    want = ["worker got hello %d\n" % i for i in range(n)]
    for mode, c in (("kernel", None), ("accel", conf)):
        srv = net.spawn("server", [PYTHON, "-c", LISTENER_SERVER, port, n, how],
                        name="lpass-" + mode, conf=c,
                        env={"BYPASS_LOG": "info"} if c else None)
        srv.wait_ready()
        go = net.dir / ("go-" + mode)
        cli = net.spawn("client", [PYTHON, "-c", LISTENER_CLIENT, net.srv_ip, port, n, rounds,
                                   str(go)], name="lpass-cli-" + mode, preload=False)
        cli.wait_ready("phase2", timeout=120)
        before = net.tcp_segs("server")
        go.write_text("go")
        assert cli.wait(timeout=60) == 0, cli.describe() + srv.describe()
        after = net.tcp_segs("server")
        assert json.loads(cli.out().strip().splitlines()[-1]) == want, (
            mode, cli.describe() + srv.describe())
        assert srv.wait(30) == 0, srv.describe()
        res = json.loads(srv.out().strip().splitlines()[-1])
        assert res == {"worker": 0, "served": n, "echoed": 64 * rounds}, (mode, res)
        if mode == "accel":
            assert_bypassed(before, after, 2 * rounds, "the sender's own connection")
            assert any("new connections to port %d go to the kernel" % port in l
                       for l in bypass_lines(srv.err())), srv.describe()


# The sender accepts one connection and keeps it, passes its listener to a worker, closes
# its own copy and waits for the worker; the worker echoes the lines of the one connection
# it accepts (a kernel connection, once the listener is handed).
IDLE_SERVER = r"""
import json, socket, subprocess, sys
port = int(sys.argv[1])
WORKER = r'''
import socket, sys
u = socket.socket(fileno=int(sys.argv[1]))
_, fds, _, _ = socket.recv_fds(u, 10, 1)
c, _ = socket.socket(fileno=fds[0]).accept()
c.settimeout(20)                     # ends, also when the test failed and left it
for line in c.makefile("rb"):
    c.sendall(b"worker got " + line)
'''
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(8)
print("ready", flush=True)
kept, _ = ls.accept()                # on the stack: it keeps the port steered there
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
worker = subprocess.Popen([sys.executable, "-c", WORKER, str(b.fileno())],
                          pass_fds=[b.fileno()])
socket.send_fds(a, [b"L"], [ls.fileno()])
ls.close()
kept.sendall(b"passed\n")
print(json.dumps({"worker": worker.wait(60)}), flush=True)
"""

# One line, then (once @go exists) another on the same connection: "phase2" between.
IDLE_CLIENT = r"""
import json, os, socket, sys, time
host, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kept = socket.create_connection((host, port), timeout=20)
assert kept.makefile("rb").readline() == b"passed\n"
c = socket.create_connection((host, port), timeout=20)
f = c.makefile("rb")
answers = []
c.sendall(b"one\n")
answers.append(f.readline().decode())
print("phase2", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
try:
    c.sendall(b"two\n")
    answers.append(f.readline().decode())
except OSError as e:
    answers.append("error %s" % e)
print(json.dumps(answers), flush=True)
"""


def kpass_delete(net):
    """The four-tuples in the server interface's XDP program's map of kernel connections;
    deleted (as the LRU map evicts an entry after 32,768 newer ones)."""
    def tool(*args):
        return json.loads(net.run("server", ["bpftool", "-j"] + list(args), preload=False,
                                  check=True).stdout)

    link = net.run("server", ["ip", "-d", "link", "show", "bypv0"], preload=False,
                   check=True).stdout
    prog = tool("prog", "show", "id", re.search(r"prog/xdp id (\d+)", link).group(1))
    maps = [m for m in (tool("map", "show", "id", str(i)) for i in prog["map_ids"])
            if m["name"] == "byp_kpass"]
    assert len(maps) == 1, maps
    keys = [e["key"] for e in tool("map", "dump", "id", str(maps[0]["id"]))]
    for k in keys:
        net.run("server", ["bpftool", "map", "delete", "id", str(maps[0]["id"]), "key", "hex"]
                + [b[2:] for b in k], preload=False, check=True)
    return len(keys)


def test_kernel_connection_on_passed_listener_loses_its_map_entry(netpair):
    """A listener passed to another process: its connections are the kernel's, remembered
    by their four-tuple in an LRU map that forgets the oldest once 32,768 newer ones came
    (an idle keep-alive connection under a reloaded HAProxy's churn).  The sender has closed
    its copy, but a connection it accepted before keeps the port steered to its stack, as
    HAProxy's old process finishing its last requests does.  A segment of a forgotten
    kernel connection reaches the sender's stack, which owns no such connection: it is
    steered back and dropped, and the peer's retransmission reaches the kernel, so the
    connection carries on as on the kernel.  Before, the stack reset it.
    The worker's accept blocks, as the kernel's does on a listener nobody made non-blocking;
    before, the listener arrived with O_NONBLOCK (the stack's kernel path sets it) and the
    worker's accept failed with EAGAIN."""
    net = netpair()
    port = PORT + 6
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", port)])
    want = ["worker got one\n", "worker got two\n"]
    for mode, c in (("kernel", None), ("accel", conf)):
        srv = net.spawn("server", [PYTHON, "-c", IDLE_SERVER, port], name="idle-" + mode,
                        conf=c, env={"BYPASS_LOG": "info"} if c else None)
        srv.wait_ready()
        go = net.dir / ("go-idle-" + mode)
        cli = net.spawn("client", [PYTHON, "-c", IDLE_CLIENT, net.srv_ip, port, str(go)],
                        name="idle-cli-" + mode, preload=False)
        cli.wait_ready("phase2", timeout=30)
        if mode == "accel":
            assert kpass_delete(net) == 1
        go.write_text("go")
        assert cli.wait(timeout=30) == 0, cli.describe() + srv.describe()
        assert json.loads(cli.out().strip().splitlines()[-1]) == want, (
            mode, cli.describe() + srv.describe())
        assert srv.wait(30) == 0, srv.describe()
        if mode == "accel":
            assert any("reached the stack: steered back to the kernel" in l
                       for l in bypass_lines(srv.err())), srv.describe()


# For the UDP workers: how many distinct datagrams of the @n sent arrive on @s (5 s
# without one ends it).
UDP_READ = r"""
import socket, sys


def read_datagrams(s, n):
    s.settimeout(5)
    got = set()
    try:
        while len(got) < n:
            got.add(s.recv(100))
    except OSError:
        pass
    return len(got)
"""

# The worker gets the socket over the UNIX socket argv[1] and answers the count there.
UDP_SERVER = "WORKER = %r\n" % (UDP_READ + r"""
u = socket.socket(fileno=int(sys.argv[1]))
_, fds, _, _ = socket.recv_fds(u, 10, 1)
u.sendall(b"%d" % read_datagrams(socket.socket(fileno=fds[0]), int(sys.argv[2])))
""") + r"""
import json, socket, subprocess, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", port))
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
worker = subprocess.Popen([sys.executable, "-c", WORKER, str(b.fileno()), str(n)],
                          pass_fds=[b.fileno()])
b.close()
socket.send_fds(a, [b"U"], [s.fileno()])
print("ready", flush=True)
print(json.dumps({"worker": worker.wait(30), "received": int(a.recv(10) or b"-1")}), flush=True)
"""

UDP_CLIENT = r"""
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b"datagram %d" % i, (host, port))
    time.sleep(0.002)
print("sent", flush=True)
"""


def test_udp_socket_sent_to_another_process(netpair):
    """A bound UDP socket (accelerated) sent to a worker, the sender reading no more: the
    worker receives every datagram, as on the kernel, where both share one queue.  Before,
    they were steered to the sender's stack and the worker got none."""
    net = netpair()
    port, n = PORT + 3, 50
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("udp", port)])
    for mode, c in (("kernel", None), ("accel", conf)):
        srv, _ = json_exchange(net, UDP_SERVER, UDP_CLIENT, port, conf=c, name="upass-" + mode,
                               args=(n,))
        assert srv == {"worker": 0, "received": n}, (mode, srv)


LEAKY_SERVER = r"""
import json, os, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(64)
os.set_inheritable(ls.fileno(), True)     # not FD_CLOEXEC, as many C servers leave it
print("ready", flush=True)
served = 0
for i in range(n):
    c, _ = ls.accept()
    if i == 0:
        os.system("true")                 # glibc's system(): posix_spawn of /bin/sh
    data = b""
    while not data.endswith(b"\n"):
        d = c.recv(100)
        if not d:
            break
        data += d
    c.sendall(data)
    c.close()
    served += 1
print(json.dumps({"served": served}), flush=True)
"""

LEAKY_CLIENT = ASK + r"""
import json, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(json.dumps([len(ask(host, port, b"x" * 2000 + b" %d\n" % i, timeout=5))
                  for i in range(n)]))
"""


def test_listener_leaked_into_system_stays_accelerated(netpair):
    """A listener the program leaves without FD_CLOEXEC is inherited by what system() runs
    (/bin/sh), which never accepts on it: the listener stays on the stack, and the
    connections after the system() call still bypass the kernel.  Only a listener sent, or
    named by a dup2 file action, goes to the kernel (the tests above)."""
    net = netpair()
    port, n = PORT + 4, 30
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", port)])
    want = [2000 + len(" %d\n" % i) for i in range(n)]
    for mode, c in (("kernel", None), ("accel", conf)):
        before = net.tcp_segs("server")
        srv, out = json_exchange(net, LEAKY_SERVER, LEAKY_CLIENT, port, conf=c,
                                 name="leaky-" + mode, args=(n,))
        assert srv == {"served": n}, (mode, srv)
        assert json.loads(out.strip().splitlines()[-1]) == want, (mode, out)
        if mode == "accel":
            assert_bypassed(before, net.tcp_segs("server"), 6 * n, "connections after system()")


# The worker has the socket as fd argv[1] and prints the count.
UDP_EXEC_SERVER = "WORKER = %r\n" % (UDP_READ + r"""
print(read_datagrams(socket.socket(fileno=int(sys.argv[1])), int(sys.argv[2])), flush=True)
""") + r"""
import json, os, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", port))
os.set_inheritable(s.fileno(), True)
r, w = os.pipe()
pid = os.fork()
if pid == 0:                              # the child shares the stack, then execs
    os.dup2(w, 1)
    os.execv(sys.executable, [sys.executable, "-c", WORKER, str(s.fileno()), str(n)])
os.close(w)
print("ready", flush=True)
got = os.read(r, 100)
_, status = os.waitpid(pid, 0)
print(json.dumps({"worker": os.waitstatus_to_exitcode(status), "received": int(got or b"-1")}),
      flush=True)
"""


def test_udp_socket_inherited_across_exec(netpair):
    """A bound UDP socket (accelerated) inherited by a forked child that execs a reader,
    the parent reading no more: the new image reads every datagram from the kernel socket,
    as on the kernel.  Before, they stayed steered to the family's stack and it got none."""
    net = netpair()
    port, n = PORT + 5, 50
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("udp", port)])
    for mode, c in (("kernel", None), ("accel", conf)):
        srv, _ = json_exchange(net, UDP_EXEC_SERVER, UDP_CLIENT, port, conf=c,
                               name="uexec-" + mode, args=(n,))
        assert srv == {"worker": 0, "received": n}, (mode, srv)
