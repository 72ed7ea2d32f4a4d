"""memcached -t 4, unmodified, under the library: concurrent clients get right values."""

import socket
import threading

import pytest

from conftest import bypass_lines, free_port, run

THREADS = 8
KEYS_PER_THREAD = 200


def recv_until(sock, marker):
    buf = b""
    while not buf.endswith(marker):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed after %r" % buf[-100:])
        buf += chunk
    return buf


def client(port, tid, errors):
    """set then get KEYS_PER_THREAD keys on one connection, raw text protocol."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for i in range(KEYS_PER_THREAD):
                key = "t%d_k%d" % (tid, i)
                val = ("v%d-%d-" % (tid, i)).encode() * (1 + i % 50)
                s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(val), val))
                if recv_until(s, b"\r\n") != b"STORED\r\n":
                    errors.append("set %s" % key)
            for i in range(KEYS_PER_THREAD):
                key = "t%d_k%d" % (tid, i)
                val = ("v%d-%d-" % (tid, i)).encode() * (1 + i % 50)
                s.sendall(b"get %s\r\n" % key.encode())
                want = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key.encode(), len(val), val)
                got = recv_until(s, b"END\r\n")
                if got != want:
                    errors.append("get %s: %r" % (key, got[:80]))
    except Exception as exc:
        errors.append("thread %d: %r" % (tid, exc))


def hammer(port):
    errors = []
    threads = [threading.Thread(target=client, args=(port, t, errors)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


@pytest.mark.parametrize("preload", [False, True], ids=["kernel", "library"])
def test_memcached_concurrent_clients(servers, preload, request):
    if preload:
        request.getfixturevalue("libbypass")
    port = free_port()
    srv = servers.start(["memcached", "-t", "4", "-l", "127.0.0.1", "-p", str(port),
                         "-U", "0", "-m", "64", "-u", "root"], port, preload=preload)
    errors = hammer(port)
    assert errors == []
    # Stats from the server agree with what the clients did.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"stats\r\n")
        stats = dict(l.split()[1:3] for l in recv_until(s, b"END\r\n").decode().splitlines()
                     if l.startswith("STAT "))
    assert int(stats["cmd_set"]) == THREADS * KEYS_PER_THREAD
    assert int(stats["get_hits"]) == THREADS * KEYS_PER_THREAD
    assert int(stats["threads"]) == 4
    # memcached's own client tool, also preloaded, sees the same data.
    tool = run(["memccat", "--servers=127.0.0.1:%d" % port, "t3_k7"], preload=preload,
               timeout=20, check=True)
    assert tool.stdout.strip() == "v3-7-" * 8
    assert srv.poll() is None
    _, err = servers.stop(srv)
    assert bypass_lines(err) == []
