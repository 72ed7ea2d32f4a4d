"""fork / posix_spawn / exec scenario, run as `/usr/bin/python3 scenario_fork.py`.

Sockets are created before fork and used on both sides; children are spawned
with posix_spawn and subprocess, one inheriting a connected socket across
exec. Prints one JSON object of normalized results (no ports, fds, pids).
"""

import json
import os
import socket
import subprocess
import sys

LO = "127.0.0.1"
PY = "/usr/bin/python3"
T = 10.0


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            break
        buf += c
    return buf


def has_lib():
    with open("/proc/self/maps") as f:
        return "libbypass.so" in f.read()


def fork_scenario():
    res = {}
    lst = socket.socket()
    lst.bind((LO, 0))
    lst.listen(8)
    addr1 = lst.getsockname()
    lst2 = socket.socket()  # accepted on by the child only
    lst2.bind((LO, 0))
    lst2.listen(8)
    sp_parent, sp_child = socket.socketpair()
    rpipe, wpipe = os.pipe()

    pid = os.fork()
    if pid == 0:  # child
        out = {}
        try:
            lst.close()
            sp_parent.close()
            os.close(rpipe)
            with socket.create_connection(addr1, timeout=T) as c:
                c.sendall(b"child-hello")
                out["reply"] = recv_exact(c, 12).decode()
            conn, _ = lst2.accept()
            conn.settimeout(T)
            out["accepted_from_parent"] = recv_exact(conn, 9).decode()
            conn.sendall(b"child-ack")
            conn.close()
            sp_child.sendall(b"over-socketpair")
            out["child_has_lib"] = has_lib()
        except Exception as exc:
            out["error"] = repr(exc)
        os.write(wpipe, json.dumps(out).encode())
        os._exit(0)

    # parent
    sp_child.close()
    os.close(wpipe)
    conn, _ = lst.accept()
    conn.settimeout(T)
    res["from_child"] = recv_exact(conn, 11).decode()
    conn.sendall(b"parent-reply")
    conn.close()
    # The parent's own second connection on the same listener.
    with socket.create_connection(addr1, timeout=T) as c2:
        a2, _ = lst.accept()
        c2.sendall(b"self-" * 1000)
        res["self_conn_ok"] = recv_exact(a2, 5000) == b"self-" * 1000
        a2.close()
    # A connection the child accepts on its inherited listener.
    with socket.create_connection(lst2.getsockname(), timeout=T) as c3:
        c3.sendall(b"to-child!")
        res["child_ack"] = recv_exact(c3, 9).decode()
    lst2.close()
    sp_parent.settimeout(T)
    res["socketpair"] = recv_exact(sp_parent, 15).decode()
    _, status = os.waitpid(pid, 0)
    res["child_exit"] = os.waitstatus_to_exitcode(status)
    child = b""
    while True:
        chunk = os.read(rpipe, 65536)
        if not chunk:
            break
        child += chunk
    os.close(rpipe)
    child = json.loads(child)
    res["child_lib_same_as_parent"] = child.pop("child_has_lib", None) == has_lib()
    res["child"] = child
    lst.close()
    return res


CHILD_ECHO = r"""
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as c:
    c.sendall(sys.argv[2].encode())
    c.shutdown(socket.SHUT_WR)
    print(c.recv(100).decode())
print("lib" if "libbypass.so" in open("/proc/self/maps").read() else "nolib")
"""

INHERIT = r"""
import os, socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
s.settimeout(10)  # the parent's O_NONBLOCK came along with the fd
s.sendall(b"from-exec-child")
print(s.recv(100).decode())
"""


def echo_server_once(lst):
    conn, _ = lst.accept()
    with conn:
        conn.settimeout(T)
        data = recv_exact(conn, 1000)
        conn.sendall(b"echo:" + data)


def spawn_scenario():
    import threading
    res = {}
    lib = "lib" if has_lib() else "nolib"
    lst = socket.socket()
    lst.bind((LO, 0))
    lst.listen(8)
    port = str(lst.getsockname()[1])

    # posix_spawn with a pipe for stdout.
    t = threading.Thread(target=echo_server_once, args=(lst,))
    t.start()
    r, w = os.pipe()
    pid = os.posix_spawn(PY, [PY, "-c", CHILD_ECHO, port, "spawned"], os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, w, 1),
                                       (os.POSIX_SPAWN_CLOSE, r)])
    os.close(w)
    out = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        out += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    t.join(T)
    lines = out.decode().split()
    res["posix_spawn"] = {"exit": os.waitstatus_to_exitcode(status),
                          "reply": lines[0] if lines else None,
                          "lib_inherited": lines[1:] == [lib]}

    # subprocess.run (fork+exec, or vfork/posix_spawn inside CPython).
    t = threading.Thread(target=echo_server_once, args=(lst,))
    t.start()
    cp = subprocess.run([PY, "-c", CHILD_ECHO, port, "subprocess"],
                        stdout=subprocess.PIPE, timeout=30)
    t.join(T)
    lines = cp.stdout.decode().split()
    res["subprocess"] = {"exit": cp.returncode, "reply": lines[0] if lines else None,
                         "lib_inherited": lines[1:] == [lib]}

    # A connected socket survives exec in the child (pass_fds).
    c = socket.create_connection(lst.getsockname(), timeout=T)
    a, _ = lst.accept()
    a.settimeout(T)
    proc = subprocess.Popen([PY, "-c", INHERIT, str(c.fileno())], pass_fds=[c.fileno()],
                            stdout=subprocess.PIPE)
    c.close()  # the child's copy keeps it open
    res["exec_inherit_recv"] = recv_exact(a, 15).decode()
    a.sendall(b"to-exec-child")
    out, _ = proc.communicate(timeout=30)
    res["exec_inherit_reply"] = out.decode().strip()
    res["exec_inherit_exit"] = proc.returncode
    a.close()

    # A shell pipeline started from the preloaded process.
    cp = subprocess.run("echo hi | tr h H", shell=True, stdout=subprocess.PIPE, timeout=30)
    res["shell"] = cp.stdout.decode().strip()
    lst.close()
    return res


if __name__ == "__main__":
    out = {}
    for name, fn in (("fork", fork_scenario), ("spawn", spawn_scenario)):
        try:
            out[name] = fn()
        except Exception as exc:
            out[name] = "EXC %r" % (exc,)
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
