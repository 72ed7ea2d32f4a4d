"""Moves N bytes each way over one TCP connection and reports sha256 of both directions.

    bulk.py server PORT NBYTES SEED
    bulk.py client HOST PORT NBYTES SEED

The client sends NBYTES generated from its SEED, then reads NBYTES; the server reads
NBYTES, then sends NBYTES generated from its SEED.  Each prints one JSON object:
{"sent": sha256, "received": sha256, "rx_bytes": n, "extra": bytes after N, "seconds": t}.
Data: chunk i is shake_128("SEED:i") of 1 MiB, so nothing repeats.
"""

import hashlib
import json
import socket
import sys
import time

CHUNK = 1 << 20


def chunks(seed, nbytes):
    """The deterministic stream of @nbytes for @seed, in pieces of at most 1 MiB."""
    i = 0
    while nbytes > 0:
        block = hashlib.shake_128(b"%s:%d" % (seed.encode(), i)).digest(CHUNK)
        yield block[:nbytes]
        nbytes -= len(block)
        i += 1


def expected_sha(seed, nbytes):
    h = hashlib.sha256()
    for c in chunks(seed, nbytes):
        h.update(c)
    return h.hexdigest()


def send_stream(sock, seed, nbytes):
    h = hashlib.sha256()
    for c in chunks(seed, nbytes):
        sock.sendall(c)
        h.update(c)
    return h.hexdigest()


def recv_stream(sock, nbytes):
    h, buf, got = hashlib.sha256(), bytearray(CHUNK), 0
    view = memoryview(buf)
    while got < nbytes:
        n = sock.recv_into(view, min(CHUNK, nbytes - got))
        if n == 0:
            break
        h.update(view[:n])
        got += n
    return h.hexdigest(), got


def main(argv):
    t0 = time.monotonic()
    if argv[1] == "server":
        port, nbytes, seed = int(argv[2]), int(argv[3]), argv[4]
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", port))
        ls.listen(4)
        print("ready", file=sys.stderr, flush=True)
        s, _ = ls.accept()
        received, got = recv_stream(s, nbytes)
        sent = send_stream(s, seed, nbytes)
        s.shutdown(socket.SHUT_WR)
    else:
        host, port, nbytes, seed = argv[2], int(argv[3]), int(argv[4]), argv[5]
        s = socket.create_connection((host, port), timeout=None)
        sent = send_stream(s, seed, nbytes)
        received, got = recv_stream(s, nbytes)
        s.shutdown(socket.SHUT_WR)
    extra = len(s.recv(65536)) if got == nbytes else -1
    s.close()
    print(json.dumps({"sent": sent, "received": received, "rx_bytes": got, "extra": extra,
                      "seconds": round(time.monotonic() - t0, 2)}))


if __name__ == "__main__":
    main(sys.argv)
