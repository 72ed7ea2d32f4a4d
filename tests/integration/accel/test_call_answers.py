"""Calls a program makes on the wrong kind of socket or at the wrong moment, answered as the
kernel answers them, side by side: on a listener (getpeername, FIONREAD, SIOCOUTQ, listen
again, recv, send, connect), on a connection (listen, connect again, bind, accept, peek with
MSG_WAITALL), and after the peer's FIN and then its reset.  (The stack answered send on a
listener ENOTCONN where the kernel says EPIPE, SIOCOUTQ on a listener with a number read
from past lwIP's listening PCB where the kernel says EINVAL, and after a FIN and a reset
recv ECONNRESET and send ECONNRESET where the kernel gives end of file, then EPIPE.)"""

from .conftest import SRV_IF, assert_bypassed, json_exchange, write_conf

PORT = 7690

SERVER = r"""
import errno, fcntl, json, socket, struct, sys, termios, time
def call(f, *a):
    try:
        r = f(*a)
        return r if isinstance(r, (int, str)) or r is None else repr(r)[:40]
    except OSError as e:
        return errno.errorcode[e.errno]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(4)
res = {}
res["l_peer"] = call(ls.getpeername)
res["l_fionread"] = call(lambda: struct.unpack("i", fcntl.ioctl(ls.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0])
res["l_outq"] = call(lambda: struct.unpack("i", fcntl.ioctl(ls.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
res["l_relisten"] = call(ls.listen, 16)
res["l_recv"] = call(ls.recv, 10, socket.MSG_DONTWAIT)
res["l_send"] = call(ls.send, b"x")
res["l_connect"] = call(ls.connect, ("10.0.0.1", 1))
res["l_type"] = call(ls.getsockopt, socket.SOL_SOCKET, socket.SO_TYPE)
res["l_err"] = call(ls.getsockopt, socket.SOL_SOCKET, socket.SO_ERROR)
print("ready", flush=True)
c, _ = ls.accept()
time.sleep(0.2)
res["c_fionread"] = call(lambda: struct.unpack("i", fcntl.ioctl(c.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0])
res["c_listen"] = call(c.listen, 4)
res["c_connect_again"] = call(c.connect, ("10.0.0.1", 1))
res["c_bind"] = call(c.bind, ("0.0.0.0", 0))
res["c_accept"] = call(c.accept)
res["c_peek_waitall"] = call(c.recv, 100, socket.MSG_PEEK | socket.MSG_WAITALL | socket.MSG_DONTWAIT)
res["c_recv"] = call(c.recv, 100)
c.sendall(b"bye")
res["c_after_peer_close"] = call(c.recv, 100)
res["c_send_after_fin"] = call(c.send, b"x", socket.MSG_NOSIGNAL)
time.sleep(0.2)
res["c_recv_after_rst"] = call(c.recv, 100)
res["c_send_after_rst"] = call(c.send, b"x", socket.MSG_NOSIGNAL)
res["c_send_again"] = call(c.send, b"x", socket.MSG_NOSIGNAL)
res["c_err"] = call(c.getsockopt, socket.SOL_SOCKET, socket.SO_ERROR)
print(json.dumps(res, sort_keys=True), flush=True)
"""
CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"hello")
s.recv(10)
s.close()
print("client ok")
"""

def test_odd_calls_answered_as_the_kernel(netpair):
    net = netpair()
    kernel = json_exchange(net, SERVER, CLIENT, PORT, None, "odd-calls")[0]
    # The scenario's own soundness: the kernel's answers it is built on.
    assert kernel["l_send"] == "EPIPE" and kernel["c_recv_after_rst"] == "b\'\'", kernel
    assert kernel["c_send_after_rst"] == "EPIPE", kernel
    conf = write_conf(net.dir / "odd.conf", SRV_IF, [("tcp", PORT)])
    before = net.tcp_segs("server")
    accel = json_exchange(net, SERVER, CLIENT, PORT, conf, "odd-calls")[0]
    assert_bypassed(before, net.tcp_segs("server"), 6, "the odd calls", bound=5)
    assert accel == kernel
