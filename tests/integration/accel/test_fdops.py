"""Issue 3: fd operations on accelerated connections behave as on kernel sockets: dup,
dup2 onto another number, TCP_INFO, fcntl O_NONBLOCK, MSG_PEEK + FIONREAD, close_range of a dup,
and the connection ends (FIN) only when its last fd closes."""

import json

from .conftest import HERE, PYTHON, write_conf

PORT = 7400

CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
def expect(b):
    got = b""
    while len(got) < len(b):
        chunk = s.recv(len(b) - len(got))
        if not chunk:
            raise SystemExit("EOF before %r" % b)
        got += chunk
    assert got == b, (got, b)
s.sendall(b"ping1"); expect(b"pong1"); expect(b"pong2")
import time; time.sleep(0.3)
s.sendall(b"abcdef"); expect(b"pong3"); expect(b"pong4")
assert s.recv(10) == b"", "no FIN after the last close"
print("client ok")
"""


def run_scenario(net, conf):
    srv = net.spawn("server", [PYTHON, str(HERE / "fdops_server.py"), PORT], name="fdops",
                    conf=conf)
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, PORT], timeout=60)
    assert cp.returncode == 0 and "client ok" in cp.stdout, cp.stdout + cp.stderr + srv.describe()
    srv.wait(30)
    return json.loads(srv.out().splitlines()[-1])


def test_fd_operations_match_kernel(netpair):
    net = netpair(accel=("server",))
    kernel = run_scenario(net, None)
    conf = write_conf(net.dir / "fdops.conf", "bypv0", [("tcp", PORT)])
    before = net.tcp_segs("server")
    accel = run_scenario(net, conf)
    moved = net.tcp_segs("server") - before
    assert kernel == {"read_via_dup": "ping1", "dup2_write": True, "nonblock": True,
                      "eagain": True, "peek": "abcdef", "fionread": 6,
                      "after_peek": "abcdef", "tcpi_state_established": True,
                      "tcpi_snd_mss_sane": True, "maxseg_of_the_link": True}, kernel
    assert accel == kernel
    assert moved < 10, "the accelerated run went through the kernel (%d segments)" % moved
