"""A paced stream for tests that change the network while a connection carries data.

    paced.py server PORT SECONDS RATE SEED [CONNS]
                                              accept CONNS (1) connections one after the
                                              other; on each send RATE bytes/s for
                                              SECONDS, close, print a JSON line
                                              {"sent": sha256, "bytes": n}
    paced.py client HOST PORT [--mss]         connect, read to EOF; print JSON
                                              {"received": sha256, "rx_bytes": n,
                                               "snd_mss": m, "rcv_mss": m}

The server prints "ready" on stderr once it listens.  Data: shake_128("SEED:i") blocks.
"""

import hashlib
import json
import socket
import struct
import sys
import time

BLOCK = 16384


def block(seed, i):
    return hashlib.shake_128(b"%s:%d" % (seed.encode(), i)).digest(BLOCK)


def expected(seed, nbytes):
    h, i = hashlib.sha256(), 0
    while nbytes > 0:
        b = block(seed, i)[:nbytes]
        h.update(b)
        nbytes -= len(b)
        i += 1
    return h.hexdigest()


def server(port, seconds, rate, seed, conns):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(8)
    print("ready", file=sys.stderr, flush=True)
    for _ in range(conns):
        serve(ls.accept()[0], seconds, rate, seed)
    ls.close()


def serve(c, seconds, rate, seed):
    h, sent, i = hashlib.sha256(), 0, 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        due = (time.monotonic() - t0) * rate
        while sent < due:
            b = block(seed, i)
            c.sendall(b)
            h.update(b)
            sent += len(b)
            i += 1
        time.sleep(0.01)
    c.close()
    print(json.dumps({"sent": h.hexdigest(), "bytes": sent}), flush=True)


def client(host, port):
    s = socket.create_connection((host, port), timeout=120)
    h, got = hashlib.sha256(), 0
    while True:
        d = s.recv(65536)
        if not d:
            break
        h.update(d)
        got += len(d)
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    snd_mss, rcv_mss = struct.unpack_from("II", info, 16)
    s.close()
    print(json.dumps({"received": h.hexdigest(), "rx_bytes": got, "snd_mss": snd_mss,
                      "rcv_mss": rcv_mss}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5],
               int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    else:
        client(sys.argv[2], int(sys.argv[3]))
