"""Socket behaviour scenario, run as `/usr/bin/python3 scenario_sockets.py`.

Exercises the socket calls an unmodified program makes (on 127.0.0.1 only) and
prints ONE JSON object of normalized results on stdout: no port numbers, no fd
numbers, no timings, so that a run under LD_PRELOAD=libbypass.so can be
compared byte for byte with a kernel-only run.

Each check is isolated: an exception inside one is recorded as
"EXC <type> <errno name>" for that key instead of aborting the run.
"""

import array
import ctypes
import errno
import fcntl
import json
import os
import select
import socket
import sys
import tempfile
import threading

LO = "127.0.0.1"
TIMEOUT = 5.0
libc = ctypes.CDLL(None, use_errno=True)


def ename(e):
    """errno number -> symbolic name ('EBADF'), stable across runs."""
    return errno.errorcode.get(e, str(e))


def exc_name(exc):
    if isinstance(exc, OSError) and exc.errno is not None:
        return ename(exc.errno)
    return type(exc).__name__


def listener(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind((LO, 0))
    if kind == socket.SOCK_STREAM:
        s.listen(16)
    return s


def tcp_pair():
    """A connected (client, server-side) TCP pair over loopback."""
    lst = listener()
    c = socket.create_connection(lst.getsockname(), timeout=TIMEOUT)
    a, _ = lst.accept()
    a.settimeout(TIMEOUT)
    lst.close()
    return c, a


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(65536, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def pattern(n, seed):
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


# ---------------------------------------------------------------- checks


def check_tcp_echo():
    lst = listener()
    addr = lst.getsockname()

    def serve():
        conn, _ = lst.accept()
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    sizes = [1, 1000, 65536, 1 << 20]
    ok = []
    with socket.create_connection(addr, timeout=TIMEOUT) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i, n in enumerate(sizes):
            msg = pattern(n, i)
            # Send in a thread so a 1 MB message cannot deadlock on full buffers.
            sender = threading.Thread(target=c.sendall, args=(msg,))
            sender.start()
            got = recv_exact(c, n)
            sender.join()
            ok.append(got == msg)
        nodelay = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        peer_is_server = c.getpeername() == addr
        c.shutdown(socket.SHUT_WR)
        tail = c.recv(10)
    t.join(TIMEOUT)
    lst.close()
    return {"sizes": sizes, "intact": ok, "eof_after_shutdown": tail == b"",
            "nodelay": nodelay, "peername_matches": peer_is_server}


def check_udp():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind((LO, 0))
    b.bind((LO, 0))
    a.settimeout(TIMEOUT)
    res = {}
    b.sendto(b"hello-udp", a.getsockname())
    peek = a.recv(64, socket.MSG_PEEK)
    data, src = a.recvfrom(64)
    res["peek"] = peek.decode()
    res["data"] = data.decode()
    res["src_is_sender"] = src == b.getsockname()
    # Datagram truncation: a short read drops the rest of the datagram.
    b.sendto(b"0123456789", a.getsockname())
    res["truncated"] = a.recv(4).decode()
    a.setblocking(False)
    try:
        a.recv(64)
        res["after_truncate"] = "data"
    except BlockingIOError as e:
        res["after_truncate"] = ename(e.errno)
    # Connected UDP: send()/recv() without addresses; MSG_TRUNC returns full length.
    b.connect(a.getsockname())
    b.send(b"x" * 100)
    a.setblocking(True)
    n = len(a.recv(10, socket.MSG_TRUNC))
    res["msg_trunc_len"] = n
    rv = libc.recv(a.fileno(), None, 0, socket.MSG_DONTWAIT | socket.MSG_TRUNC)
    res["empty_dontwait"] = ename(ctypes.get_errno()) if rv < 0 else rv
    # Many datagrams keep boundaries and order.
    for i in range(50):
        b.send(b"d%03d" % i)
    got = [a.recv(64).decode() for _ in range(50)]
    res["order_ok"] = got == ["d%03d" % i for i in range(50)]
    a.close()
    b.close()
    return res


def check_nonblocking_connect():
    res = {}
    lst = listener()
    c = socket.socket()
    c.setblocking(False)
    res["connect_ex"] = ename(c.connect_ex(lst.getsockname()))
    _, w, _ = select.select([], [c], [], TIMEOUT)
    res["writable"] = bool(w)
    res["so_error"] = ename(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)) or 0
    res["second_connect_ex"] = ename(c.connect_ex(lst.getsockname()))
    a, _ = lst.accept()
    c.send(b"ping")
    a.settimeout(TIMEOUT)
    res["data"] = a.recv(10).decode()
    a.close()
    c.close()
    # Same against a closed port: EINPROGRESS, then SO_ERROR=ECONNREFUSED (via poll).
    port_addr = lst.getsockname()
    lst.close()
    c = socket.socket()
    c.setblocking(False)
    res["refused_connect_ex"] = ename(c.connect_ex(port_addr))
    p = select.poll()
    p.register(c, select.POLLOUT)
    ev = p.poll(TIMEOUT * 1000)
    res["refused_poll_revents"] = sorted(
        n for n, bit in (("POLLOUT", select.POLLOUT), ("POLLERR", select.POLLERR),
                         ("POLLHUP", select.POLLHUP)) if ev and ev[0][1] & bit)
    res["refused_so_error"] = ename(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    c.close()
    return res


def check_epoll_level():
    c, a = tcp_pair()
    ep = select.epoll()
    ep.register(a.fileno(), select.EPOLLIN)
    res = {"empty": len(ep.poll(0.05))}
    c.send(b"abc")
    first = ep.poll(TIMEOUT)
    second = ep.poll(0.05)  # level-triggered: still readable, data not consumed
    res["first"] = [e == select.EPOLLIN for _, e in first]
    res["second"] = [e == select.EPOLLIN for _, e in second]
    res["fd_matches"] = bool(first) and first[0][0] == a.fileno()
    a.recv(10)
    res["after_read"] = len(ep.poll(0.05))
    # EPOLLOUT on a writable socket; EPOLLRDHUP/EPOLLIN after peer close.
    ep.modify(a.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP)
    res["out"] = [e == select.EPOLLOUT for _, e in ep.poll(TIMEOUT)]
    c.close()
    ev = ep.poll(TIMEOUT)
    res["after_peer_close"] = [e & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLOUT)
                               == (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLOUT)
                               for _, e in ev]
    ep.unregister(a.fileno())
    try:
        ep.unregister(a.fileno())
        res["double_unregister"] = "ok"
    except OSError as e:
        res["double_unregister"] = ename(e.errno)
    ep.close()
    a.close()
    return res


def check_epoll_edge():
    c, a = tcp_pair()
    ep = select.epoll()
    ep.register(a.fileno(), select.EPOLLIN | select.EPOLLET)
    c.send(b"one")
    res = {"first": len(ep.poll(TIMEOUT))}
    res["second_no_new_data"] = len(ep.poll(0.1))
    c.send(b"two")
    res["third_new_data"] = len(ep.poll(TIMEOUT))
    res["data"] = recv_exact(a, 6).decode()
    res["after_drain"] = len(ep.poll(0.05))
    ep.close()
    c.close()
    a.close()
    return res


def check_epoll_oneshot():
    c, a = tcp_pair()
    ep = select.epoll()
    ep.register(a.fileno(), select.EPOLLIN | select.EPOLLONESHOT)
    c.send(b"x")
    res = {"first": len(ep.poll(TIMEOUT))}
    c.send(b"y")
    res["disarmed"] = len(ep.poll(0.1))
    ep.modify(a.fileno(), select.EPOLLIN | select.EPOLLONESHOT)
    res["rearmed"] = len(ep.poll(TIMEOUT))
    res["disarmed_again"] = len(ep.poll(0.05))
    res["data"] = recv_exact(a, 2).decode()
    ep.close()
    c.close()
    a.close()
    return res


def check_epoll_many():
    """One epoll set over 20 connections; exactly the written ones report."""
    lst = listener()
    clients, servers = [], []
    for _ in range(20):
        clients.append(socket.create_connection(lst.getsockname(), timeout=TIMEOUT))
        servers.append(lst.accept()[0])
    ep = select.epoll()
    for i, s in enumerate(servers):
        ep.register(s.fileno(), select.EPOLLIN)
    for i in range(0, 20, 3):
        clients[i].send(b"m")
    ready = set()
    for _ in range(50):
        for fd, _ in ep.poll(0.05):
            ready.add(fd)
        if len(ready) == 7:
            break
    idx = sorted(i for i, s in enumerate(servers) if s.fileno() in ready)
    for s in clients + servers + [lst]:
        s.close()
    ep.close()
    return {"ready_indices": idx}


def check_poll():
    c, a = tcp_pair()
    p = select.poll()
    p.register(a, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
    bits = lambda ev: sorted(n for n in ("POLLIN", "POLLOUT", "POLLRDHUP", "POLLHUP", "POLLERR")
                             if ev and ev[0][1] & getattr(select, n))
    res = {"idle": bits(p.poll(0))}
    c.send(b"data")
    res["with_data"] = bits(p.poll(TIMEOUT))
    c.shutdown(socket.SHUT_WR)
    res["peer_shut_wr"] = bits(p.poll(TIMEOUT))
    p.modify(a, select.POLLIN)
    a.recv(10)
    res["timeout_ms_no_events"] = p.poll(0)[0][1] == select.POLLIN  # EOF stays readable
    # Closed fd in the set -> POLLNVAL.
    r, w = os.pipe()
    os.close(r)
    p2 = select.poll()
    p2.register(r, select.POLLIN)
    res["closed_fd"] = [e == select.POLLNVAL for _, e in p2.poll(0)]
    os.close(w)
    c.close()
    a.close()
    return res


def check_select():
    c, a = tcp_pair()
    r, w, x = select.select([a], [a], [a], 0)
    res = {"idle": [len(r), len(w), len(x)]}
    c.send(b"z")
    r, w, x = select.select([a], [], [], TIMEOUT)
    res["readable"] = len(r)
    r, _, _ = select.select([c], [], [], 0.05)
    res["other_not_readable"] = len(r)
    closed = socket.socket()
    fd = closed.fileno()
    os.close(fd)
    try:
        select.select([fd], [], [], 0)
        res["closed_fd"] = "ok"
    except OSError as e:
        res["closed_fd"] = ename(e.errno)
    closed.detach()
    c.close()
    a.close()
    return res


def check_socketpair():
    res = {}
    s1, s2 = socket.socketpair()
    s1.sendall(b"stream-pair")
    res["stream"] = recv_exact(s2, 11).decode()
    s1.close()
    res["stream_eof"] = s2.recv(10) == b""
    s2.close()
    d1, d2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    d1.send(b"a")
    d1.send(b"bc")
    res["dgram"] = [d2.recv(10).decode(), d2.recv(10).decode()]
    # Pass an fd with SCM_RIGHTS and use it on the other side.
    rp, wp = os.pipe()
    fds = array.array("i", [wp])
    d1.sendmsg([b"fd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    msg, anc, flags, _ = d2.recvmsg(10, socket.CMSG_SPACE(4))
    got = array.array("i")
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            got.frombytes(data[:4])
    res["scm_rights_msg"] = msg.decode()
    res["scm_rights_count"] = len(got)
    if got:
        os.write(got[0], b"via-passed-fd")
        os.close(got[0])
        res["scm_rights_works"] = os.read(rp, 64).decode()
    for fd in (rp, wp):
        os.close(fd)
    d1.close()
    d2.close()
    return res


def check_dup():
    c, a = tcp_pair()
    res = {}
    target = os.open(os.devnull, os.O_RDONLY)
    ret = os.dup2(c.fileno(), target)
    res["dup2_returns_target"] = ret == target
    os.write(target, b"via-dup2")
    res["peer_got"] = recv_exact(a, 8).decode()
    # The dup is a socket: the socket module can wrap it and query it.
    d = socket.socket(fileno=target)
    res["dup_type"] = d.type == socket.SOCK_STREAM
    res["dup_same_local"] = d.getsockname() == c.getsockname()
    c.close()  # the dup keeps the connection open
    a.sendall(b"back")
    res["read_via_dup"] = recv_exact(d, 4).decode()
    d2fd = os.dup(d.fileno())
    d.close()
    os.write(d2fd, b"dup")
    res["via_dup"] = recv_exact(a, 3).decode()
    # fcntl F_DUPFD_CLOEXEC
    d3fd = fcntl.fcntl(d2fd, fcntl.F_DUPFD_CLOEXEC, 0)
    res["dupfd_cloexec"] = bool(fcntl.fcntl(d3fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
    os.close(d2fd)
    os.close(d3fd)
    res["peer_eof_after_last_close"] = a.recv(10) == b""
    # dup2 onto itself returns the fd.
    s = socket.socket()
    res["dup2_self"] = os.dup2(s.fileno(), s.fileno()) == s.fileno()
    s.close()
    a.close()
    return res


def check_fcntl():
    c, a = tcp_pair()
    fd = a.fileno()
    res = {}
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    res["initial_nonblock"] = bool(fl & os.O_NONBLOCK)
    res["initial_rdwr"] = (fl & os.O_ACCMODE) == os.O_RDWR
    fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    res["set_nonblock"] = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK)
    try:
        os.read(fd, 10)
        res["read_empty"] = "data"
    except OSError as e:
        res["read_empty"] = ename(e.errno)
    rv = libc.recv(fd, ctypes.create_string_buffer(10), 10, 0)
    res["libc_recv_empty"] = [rv, ename(ctypes.get_errno())]
    fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
    res["cleared_nonblock"] = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK)
    res["cloexec"] = bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
    os.set_inheritable(fd, True)
    res["cloexec_cleared"] = bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
    # SOCK_NONBLOCK at creation and ioctl FIONBIO both show in F_GETFL.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    res["sock_nonblock_flag"] = bool(fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)
    s.close()
    import termios
    fcntl.ioctl(c.fileno(), termios.FIONBIO, array.array("i", [1]))
    res["fionbio"] = bool(fcntl.fcntl(c.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)
    a.sendall(b"12345")
    c.setblocking(True)
    recv_exact(c, 5)
    buf = array.array("i", [0])
    fcntl.ioctl(c.fileno(), termios.FIONREAD, buf)
    res["fionread_empty"] = buf[0]
    a.sendall(b"123")
    c.recv(0)  # no-op
    select.select([c], [], [], TIMEOUT)
    fcntl.ioctl(c.fileno(), termios.FIONREAD, buf)
    res["fionread"] = buf[0]
    c.close()
    a.close()
    return res


def check_shutdown():
    c, a = tcp_pair()
    res = {}
    c.sendall(b"request")
    c.shutdown(socket.SHUT_WR)
    res["server_read"] = recv_exact(a, 100).decode()
    res["server_eof"] = a.recv(10) == b""
    a.sendall(b"response")  # half-close: the other direction still works
    a.close()
    res["client_read"] = recv_exact(c, 100).decode()
    try:
        c.send(b"x")
        res["send_after_shut_wr"] = "ok"
    except OSError as e:
        res["send_after_shut_wr"] = ename(e.errno)
    c.close()
    s = socket.socket()
    try:
        s.shutdown(socket.SHUT_RDWR)
        res["shutdown_unconnected"] = "ok"
    except OSError as e:
        res["shutdown_unconnected"] = ename(e.errno)
    s.close()
    return res


def check_sockopts():
    s = socket.socket()
    res = {}
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    res["reuseaddr"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    res["keepalive"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    res["type"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
    res["domain"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET
    res["acceptconn_before"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    s.bind((LO, 0))
    s.listen(1)
    res["acceptconn_after"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    try:
        s.getsockopt(0xFFFF, 1)
        res["bad_level"] = "ok"
    except OSError as e:
        res["bad_level"] = ename(e.errno)
    s.close()
    return res


def check_sendfile():
    c, a = tcp_pair()
    data = pattern(200000, 3)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        sent = 0
        result = {}

        def rd():
            result["got"] = recv_exact(a, len(data))

        t = threading.Thread(target=rd)
        t.start()
        while sent < len(data):
            sent += os.sendfile(c.fileno(), f.fileno(), sent, len(data) - sent)
        t.join(TIMEOUT)
    c.close()
    a.close()
    return {"sent": sent, "intact": result.get("got") == data}


def check_errors():
    res = {}
    # EBADF: socket op on a closed fd.
    s = socket.socket()
    os.close(s.fileno())
    for name, op in (("send", lambda: s.send(b"x")),
                     ("getsockname", s.getsockname),
                     ("connect", lambda: s.connect((LO, 9)))):
        try:
            op()
            res["ebadf_" + name] = "ok"
        except OSError as e:
            res["ebadf_" + name] = ename(e.errno)
    s.detach()
    rv = libc.close(-1)
    res["close_minus_1"] = [rv, ename(ctypes.get_errno())]
    # ENOTSOCK: socket ops on a pipe and on a regular file.
    r, w = os.pipe()
    try:
        socket.socket(fileno=r)
        res["enotsock_wrap_pipe"] = "ok"
    except OSError as e:
        res["enotsock_wrap_pipe"] = ename(e.errno)
    ctypes.set_errno(0)
    rv = libc.recv(r, ctypes.create_string_buffer(4), 4, socket.MSG_DONTWAIT)
    res["enotsock_recv_pipe"] = [rv, ename(ctypes.get_errno())]
    ctypes.set_errno(0)
    rv = libc.listen(w, 1)
    res["enotsock_listen_pipe"] = [rv, ename(ctypes.get_errno())]
    with tempfile.TemporaryFile() as f:
        ctypes.set_errno(0)
        rv = libc.shutdown(f.fileno(), socket.SHUT_RDWR)
        res["enotsock_shutdown_file"] = [rv, ename(ctypes.get_errno())]
    os.close(r)
    os.close(w)
    # ECONNREFUSED: connect to a port nothing listens on.
    tmp = listener()
    addr = tmp.getsockname()
    tmp.close()
    c = socket.socket()
    try:
        c.connect(addr)
        res["econnrefused"] = "ok"
    except OSError as e:
        res["econnrefused"] = ename(e.errno)
    c.close()
    # EADDRINUSE: bind a port a listener holds (with and without SO_REUSEADDR).
    lst = listener()
    for reuse in (0, 1):
        b = socket.socket()
        b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, reuse)
        try:
            b.bind(lst.getsockname())
            res["eaddrinuse_reuse%d" % reuse] = "ok"
        except OSError as e:
            res["eaddrinuse_reuse%d" % reuse] = ename(e.errno)
        b.close()
    # Other common errors.
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.listen(1)
        res["listen_udp"] = "ok"
    except OSError as e:
        res["listen_udp"] = ename(e.errno)
    u.close()
    t = socket.socket()
    for name, op in (("accept_unlistened", t.accept),
                     ("getpeername_unconnected", t.getpeername),
                     ("recv_unconnected", lambda: t.recv(1)),
                     ("send_unconnected", lambda: t.send(b"x"))):
        try:
            op()
            res[name] = "ok"
        except OSError as e:
            res[name] = ename(e.errno)
    t.close()
    try:
        socket.socket(socket.AF_INET, 12345)
        res["bad_type"] = "ok"
    except OSError as e:
        res["bad_type"] = ename(e.errno)
    # The caller's errno survives successful calls.
    ctypes.set_errno(errno.EINTR)
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    res["errno_kept_after_success"] = ename(ctypes.get_errno())
    os.close(fd)
    lst.close()
    return res


def check_accept_many_threads():
    """Four client threads, 25 connections each, against one accepting server."""
    lst = listener()
    addr = lst.getsockname()
    results = []
    lock = threading.Lock()

    def client(k):
        for i in range(25):
            with socket.create_connection(addr, timeout=TIMEOUT) as c:
                c.sendall(b"%d-%d" % (k, i))
                c.shutdown(socket.SHUT_WR)
                reply = recv_exact(c, 64)
            with lock:
                results.append(reply == b"ack:%d-%d" % (k, i))

    def server():
        for _ in range(100):
            conn, _ = lst.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                msg = recv_exact(conn, 64)
                conn.sendall(b"ack:" + msg)

    st = threading.Thread(target=server, daemon=True)
    st.start()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    st.join(30)
    lst.close()
    return {"connections": len(results), "all_ok": all(results)}


CHECKS = [
    ("tcp_echo", check_tcp_echo),
    ("udp", check_udp),
    ("nonblocking_connect", check_nonblocking_connect),
    ("epoll_level", check_epoll_level),
    ("epoll_edge", check_epoll_edge),
    ("epoll_oneshot", check_epoll_oneshot),
    ("epoll_many", check_epoll_many),
    ("poll", check_poll),
    ("select", check_select),
    ("socketpair", check_socketpair),
    ("dup", check_dup),
    ("fcntl", check_fcntl),
    ("shutdown", check_shutdown),
    ("sockopts", check_sockopts),
    ("sendfile", check_sendfile),
    ("errors", check_errors),
    ("accept_threads", check_accept_many_threads),
]


def main():
    only = set(sys.argv[1:])
    out = {}
    for name, fn in CHECKS:
        if only and name not in only:
            continue
        try:
            out[name] = fn()
        except Exception as exc:  # recorded, so a comparison shows where it broke
            out[name] = "EXC %s %s" % (type(exc).__name__, exc_name(exc))
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
