"""A redis client that lives through its server's restart, for test_memif.py.

    restart_client.py HOST PORT GOFILE

Connects, PING -> +PONG, prints "ready", waits until GOFILE exists (the test restarted the
server meanwhile), then PINGs on the old connection until it fails and reports how (the
errno name, or "EOF"), then opens a new connection (retrying ECONNREFUSED while the server
comes up) and PINGs on it.  Prints one JSON object:
{"old": "ECONNRESET", "new": "+PONG", "refused_retries": n}.

    restart_client.py refused HOST PORT

One connect(); prints {"errno": "ECONNREFUSED"} (or "0" when it connected).
"""

import errno
import json
import os
import socket
import sys
import time


def ping(s):
    s.sendall(b"PING\r\n")
    r = s.recv(64)
    if not r:
        raise EOFError
    return r.decode().strip()


def main():
    if sys.argv[1] == "refused":
        s = socket.socket()
        try:
            s.connect((sys.argv[2], int(sys.argv[3])))
            e = "0"
        except OSError as ex:
            e = errno.errorcode.get(ex.errno, str(ex.errno))
        print(json.dumps({"errno": e}), flush=True)
        return 0
    host, port, gofile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.create_connection((host, port), timeout=30)
    assert ping(s) == "+PONG"
    print("ready", flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(gofile):
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.05)
    old = "none"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ping(s)
        except EOFError:
            old = "EOF"
            break
        except OSError as ex:
            old = errno.errorcode.get(ex.errno, str(ex.errno))
            break
        time.sleep(0.1)
    s.close()
    retries, new = 0, "none"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            s2 = socket.create_connection((host, port), timeout=30)
        except ConnectionRefusedError:
            retries += 1
            time.sleep(0.1)
            continue
        new = ping(s2)
        s2.close()
        break
    print(json.dumps({"old": old, "new": new, "refused_retries": retries}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
