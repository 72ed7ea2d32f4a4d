"""A pre-forked UDP echo: the parent binds one UDP socket, forks N workers that all
recvfrom it and echo, and exits (as a daemon does).  Prints "ready PID...".  A worker ends
after @life seconds or on SIGTERM.  argv: port nworkers life"""
import os
import signal
import socket
import sys
import time

port, n, life = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", port))
pids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        s.settimeout(0.5)
        end = time.monotonic() + life
        while time.monotonic() < end:
            try:
                data, peer = s.recvfrom(65536)
            except socket.timeout:
                continue
            s.sendto(b"%d:" % os.getpid() + data, peer)
        sys.exit(0)
    pids.append(pid)
print("ready " + " ".join(map(str, pids)), flush=True)
