"""Issue 9: an accelerated UDP socket appears once per epoll_wait, whatever path its datagrams
took (the stack, or its kernel socket through loopback), level- and edge-triggered; poll()
sees both paths too.  Once, EPOLLOUT was reported twice in one epoll_wait: by the socket and
by its kernel socket registered beside it."""

import json

from .conftest import PYTHON, write_conf

PORT = 7820

# Prints one JSON line per step: the (fd-tag, events) entries one epoll_wait returned.
PROG = r"""
import json, select, socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
s.bind(("0.0.0.0", port))
et = select.EPOLLET if mode == "et" else 0
ep = select.epoll()
ep.register(s.fileno(), select.EPOLLIN | select.EPOLLOUT | et)
def step(name):
    got = ep.poll(0.5, 64)
    print(json.dumps([name, [[fd == s.fileno(), ev] for fd, ev in got]]), flush=True)
step("idle")
print("ready", flush=True)
# The test sends one datagram through the stack (from the client namespace); here one more
# arrives through loopback (the kernel socket).
lo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
import os
deadline = time.time() + 20
while time.time() < deadline and not os.path.exists("go"):   # the test's signal
    time.sleep(0.02)
lo.sendto(b"l" * 10, ("127.0.0.1", port))
time.sleep(0.3)
step("both")
got = []
for _ in range(2):
    p = select.poll()
    p.register(s.fileno(), select.POLLIN)
    r = p.poll(2000)
    got.append(len(s.recv(100)))
    print(json.dumps(["poll", r[0][1] if r else 0]), flush=True)
step("drained")
step("drained2")
print(json.dumps(["lengths", sorted(got)]), flush=True)
"""


def steps(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("["):
            v = json.loads(line)
            out.setdefault(v[0], []).append(v[1])
    return out


def run_mode(netpair, mode):
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "ep.conf", "bypv0", [("udp", PORT)])
    srv = net.spawn("server", [PYTHON, "-c", PROG, PORT, mode], name="ep-" + mode, conf=conf,
                    env={"BYPASS_LOG": "info"})
    srv.wait_ready()
    before = net.snmp("server")["Udp.InDatagrams"]
    net.run("client", [PYTHON, "-c", "import socket, sys; socket.socket(socket.AF_INET, "
                       "socket.SOCK_DGRAM).sendto(b's' * 20, (sys.argv[1], %d))" % PORT,
                       net.srv_ip], timeout=30, check=True)
    (net.dir / "go").write_text("go")
    srv.wait(30)
    assert "udp socket on port %d accelerated" % PORT in srv.err(), srv.describe()
    # Only the loopback datagram went through the server's kernel.
    assert net.snmp("server")["Udp.InDatagrams"] - before <= 1, srv.describe()
    return steps(srv.out()), srv


def test_epoll_reports_udp_socket_once_level(netpair):
    st, srv = run_mode(netpair, "lt")
    IN, OUT = 0x1, 0x4
    assert st["idle"] == [[[True, OUT]]], srv.describe()
    # Datagrams on both paths: one entry, both bits.
    assert st["both"] == [[[True, IN | OUT]]], srv.describe()
    assert [e for e in st["poll"]] == [IN, IN], srv.describe()
    assert st["drained"] == [[[True, OUT]]], srv.describe()
    assert st["lengths"] == [[10, 20]], srv.describe()


def test_epoll_reports_udp_socket_once_edge(netpair):
    st, srv = run_mode(netpair, "et")
    IN, OUT = 0x1, 0x4
    assert st["idle"] == [[[True, OUT]]], srv.describe()
    both = st["both"][0]
    assert len(both) == 1 and both[0][1] & IN, srv.describe()
    assert st["lengths"] == [[10, 20]], srv.describe()
