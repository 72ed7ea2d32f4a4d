"""What a program writes on its way out reaches the peer, as on the kernel: an exit handler
registered before the first socket (so it runs after the library's own) sends on a live
accelerated connection, and libc's flush of a stdio stream over the connection, which runs
after every exit handler, delivers its buffer.  The accelerated server, single-process and
fork-per-connection, gives the client the same bytes as the same server on the kernel, and
the server can start again on its port at once."""

import hashlib

import pytest

from .conftest import PYTHON, SRV_IF, write_conf

PORT = 7600
BODY = 60000

CLIENT = r"""
import hashlib, socket, sys
host, port, n, word = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
for i in range(n):
    s = socket.create_connection((host, port), timeout=20)
    s.sendall(b"%s %d\n" % (word, i))
    if word == b"eof":
        s.shutdown(socket.SHUT_WR)   # the server answers from CLOSE_WAIT
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    print(i, len(got), hashlib.sha256(got).hexdigest(), flush=True)
"""


def expected(word, i):
    body = bytes((ord("a") + k % 26) for k in range(BODY))
    data = (b"bye from the exit handler\n" + b"stdio answer to %s %d\n" % (word.encode(), i)
            + body + b"\n")
    return "%d %d %s" % (i, len(data), hashlib.sha256(data).hexdigest())


def serve(net, prog, mode, word, n, how, conf):
    argv = [prog, str(PORT), mode, str(n), how]
    srv = net.spawn("server", argv, name="exit-writer-" + mode + ("-accel" if conf else ""),
                    conf=conf)
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, str(PORT), str(n), word],
                 timeout=60)
    code = srv.wait(20)
    return cp.stdout.splitlines(), code, srv


@pytest.mark.parametrize("how", ["exit", "_exit"])
@pytest.mark.parametrize("mode,word", [("single", "hello"), ("single", "eof"), ("fork", "hello"),
                                       ("fork", "eof")])
def test_last_words_at_exit_reach_the_peer(netpair, cprog, mode, word, how):
    """@word "eof": the client shuts its side after the request, so the server's connection
    is in CLOSE_WAIT when it exits.  @how "_exit": no exit handler runs, the answer was sent
    by hand just before: what send() took must arrive, and the client must see the end."""
    net = netpair()
    prog = cprog("exit_writer")
    n = 1 if mode == "single" else 8
    conf = write_conf(net.dir / "bypass.conf", SRV_IF, [("tcp", PORT)])
    want = [expected(word, i) for i in range(n)]
    kernel, kcode, ksrv = serve(net, prog, mode, word, n, how, None)
    assert (kernel, kcode) == (want, 0), ksrv.describe()
    accel, acode, asrv = serve(net, prog, mode, word, n, how, conf)
    assert (accel, acode) == (want, 0), asrv.describe()
    assert "exit handler send" not in asrv.err(), asrv.describe()
    # The connections the kernel took over keep the port reusable (SO_REUSEADDR), as the
    # kernel's own would: the server starts again at once while they end in TIME_WAIT.
    again, code, srv = serve(net, prog, mode, word, n, how, None)
    assert (again, code) == (want, 0), srv.describe()


PEER = r"""
import hashlib, socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(1)
print("ready", flush=True)
c, _ = ls.accept()
c.sendall(b"hello 0\n")
got = b""
while True:
    d = c.recv(65536)
    if not d:
        break
    got += d
print(0, len(got), hashlib.sha256(got).hexdigest(), flush=True)
"""


@pytest.mark.parametrize("how", ["exit", "_exit"])
def test_client_last_words_at_exit_reach_the_server(netpair, cprog, how):
    """The same from an accelerated client (its kernel socket holds the port): the server
    gets what the client's exit handler and stdio flush wrote, as from a kernel client."""
    net = netpair(accel=("client",))
    prog = cprog("exit_writer")
    conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", PORT)])
    for c in (None, conf):
        srv = net.spawn("server", [PYTHON, "-c", PEER, str(PORT)], name="exit-peer")
        srv.wait_ready()
        cp = net.run("client", [prog, str(PORT), "client", net.srv_ip, how], conf=c, timeout=30)
        assert cp.returncode == 0, cp.stderr
        assert srv.wait(20) == 0, srv.describe()
        assert srv.out().splitlines()[1:] == [expected("hello", 0)], (c, srv.describe())
