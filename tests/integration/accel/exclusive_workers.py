"""Pre-forked workers waiting on one listener with EPOLLEXCLUSIVE (nginx's way).

    exclusive_workers.py PORT WORKERS SECONDS

The parent listens, forks WORKERS children and waits for them.  Each child waits in
epoll_wait on the shared listener (EPOLLIN | EPOLLEXCLUSIVE), accepts without blocking,
echoes one message and closes; for SECONDS it counts its wake-ups that found no connection
to accept (EAGAIN: the wake-ups EPOLLEXCLUSIVE exists to save, seen when the
workers take a moment to accept), then prints "worker <pid> accepted <n> idle <m> switches <s>", <s> its
voluntary context switches (each sleep it woke from: what EPOLLEXCLUSIVE exists to save),
and exits.  The parent prints "ready" once the workers
wait, and "done" when they have all exited."""
import errno
import os
import select
import socket
import sys
import time

port, workers, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(64)
ls.setblocking(False)
end = time.monotonic() + secs
kids = []
for _ in range(workers):
    pid = os.fork()
    if pid == 0:
        ep = select.epoll()
        ep.register(ls.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
        accepted = idle = 0
        while time.monotonic() < end:
            if not ep.poll(max(end - time.monotonic(), 0.001)):
                continue
            time.sleep(0.005)        # a worker with other work accepts a moment later
            try:
                c, _ = ls.accept()
            except OSError as e:
                if e.errno != errno.EAGAIN:
                    raise
                idle += 1
                continue
            c.setblocking(True)
            c.sendall(c.recv(100))
            c.close()
            accepted += 1
        st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
        print("worker %d accepted %d idle %d switches %d" % (os.getpid(), accepted, idle,
              int(st["voluntary_ctxt_switches"])), flush=True)
        os._exit(0)
    kids.append(pid)
time.sleep(0.5)
print("ready", flush=True)
for pid in kids:
    os.waitpid(pid, 0)
print("done", flush=True)
