"""Connection teardown, played by two processes; each prints what it saw as JSON.

    teardown.py server PORT
    teardown.py client HOST PORT CLOSED_PORT

Cases, one connection each, in this order:
  fin          client sends "hello" and shuts down its write side; the server reads it and
               EOF, answers "bye" and closes; the client reads "bye" and EOF.
  rst_srv      the server closes with 1000 unread bytes (RST): the client's recv fails,
               then its send (MSG_NOSIGNAL) fails.
  reset_send   the same reset, but the client's first call after it is send, then send
               again (MSG_NOSIGNAL), then send without it (SIGPIPE counted), then recv.
  rst_cli      the client closes with 1000 unread bytes: the server's recv fails, then
               its send fails.
  refused      blocking connect to CLOSED_PORT; non-blocking connect, then SO_ERROR.
Errors are recorded by errno name; "timeout" means nothing happened within 10 s.
"""

import errno
import json
import select
import signal
import socket
import sys
import time

WAIT = 10.0
SIGPIPES = []


def err_name(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    return errno.errorcode.get(e.errno, str(e.errno))


def attempt(fn):
    """fn()'s result as text, or the errno name it failed with."""
    try:
        r = fn()
        return r.decode() if isinstance(r, bytes) else r
    except OSError as e:
        return err_name(e)


def readable(s, t=WAIT):
    return bool(select.select([s], [], [], t)[0])


def read_to_eof(s):
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return data.decode(), "eof"
        data += chunk


def server(port):
    out = {}
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(16)
    print("ready", file=sys.stderr, flush=True)

    c, _ = ls.accept()
    c.settimeout(WAIT)
    out["fin"] = attempt(lambda: "%s+%s" % read_to_eof(c))
    out["fin_reply"] = attempt(lambda: c.sendall(b"bye") or "sent")
    c.close()

    for case in ("rst_srv", "reset_send"):
        c, _ = ls.accept()
        out[case + "_data_arrived"] = readable(c)
        time.sleep(0.2)
        c.close()  # 1000 bytes unread: RST

    c, _ = ls.accept()
    c.settimeout(WAIT)
    c.sendall(b"x" * 1000)
    out["rst_cli_recv"] = attempt(lambda: c.recv(4096))
    out["rst_cli_send"] = attempt(lambda: c.send(b"more", socket.MSG_NOSIGNAL))
    c.close()
    print(json.dumps(out, sort_keys=True))


def client(host, port, closed_port):
    signal.signal(signal.SIGPIPE, lambda *_: SIGPIPES.append(1))
    out = {}
    s = socket.create_connection((host, port), timeout=WAIT)
    s.sendall(b"hello")
    s.shutdown(socket.SHUT_WR)
    out["fin"] = attempt(lambda: "%s+%s" % read_to_eof(s))
    s.close()

    s = socket.create_connection((host, port), timeout=WAIT)
    s.sendall(b"y" * 1000)
    out["rst_srv_recv"] = attempt(lambda: s.recv(4096))
    out["rst_srv_send"] = attempt(lambda: s.send(b"more", socket.MSG_NOSIGNAL))
    s.close()

    s = socket.create_connection((host, port), timeout=WAIT)
    s.sendall(b"z" * 1000)
    time.sleep(1.5)  # the server's RST arrives while nobody is in a socket call
    out["reset_send_1"] = attempt(lambda: s.send(b"more", socket.MSG_NOSIGNAL))
    out["reset_send_2"] = attempt(lambda: s.send(b"more", socket.MSG_NOSIGNAL))
    out["reset_sigpipes_nosignal"] = len(SIGPIPES)
    out["reset_send_3"] = attempt(lambda: s.send(b"more"))  # no MSG_NOSIGNAL: SIGPIPE
    out["reset_sigpipes"] = len(SIGPIPES)
    out["reset_send_recv"] = attempt(lambda: s.recv(4096))
    s.close()

    s = socket.create_connection((host, port), timeout=WAIT)
    out["rst_cli_data_arrived"] = readable(s)
    time.sleep(0.2)
    s.close()  # 1000 bytes unread: RST

    s = socket.socket()
    s.settimeout(WAIT)
    out["refused_blocking"] = attempt(lambda: s.connect((host, closed_port)) or "connected")
    s.close()
    s = socket.socket()
    s.setblocking(False)
    out["refused_nb_connect"] = errno.errorcode.get(s.connect_ex((host, closed_port)))
    out["refused_nb_writable"] = bool(select.select([], [s], [], WAIT)[1])
    so = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    out["refused_nb_so_error"] = errno.errorcode.get(so, so)
    s.close()
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
