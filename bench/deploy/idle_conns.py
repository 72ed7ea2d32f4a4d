"""Holds N idle TCP connections to HOST:PORT until STOP_FILE exists (bench/deploy's
redis-idle part: a server with many quiet clients, as a cache or a broker has).

    idle_conns.py HOST PORT N STOP_FILE

Prints "open N" once they are all established."""
import os
import resource
import socket
import sys
import time

host, port, n, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
print("open %d" % len(socks), flush=True)
deadline = time.monotonic() + 600
while not os.path.exists(stop) and time.monotonic() < deadline:
    time.sleep(0.1)
