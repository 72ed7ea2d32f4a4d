"""Issue 12, signals: a handler without SA_RESTART interrupts a blocking call with EINTR
whether the call spins or sleeps; with SA_RESTART the call resumes; a handler that sends on
another accelerated socket does not deadlock.  Each case runs sigcall.c on the kernel and
under the library (BYPASS_SPIN_USEC=-1, spinning only, and the default, spin then sleep);
the result lines must be identical, and the peer must have received what the handler sent.
"""
import os
import time

import pytest

from .conftest import HERE, PYTHON, write_conf

PORT, PEER_PORT = 7300, 7301
OPS = ["recv", "send", "accept", "connect", "epoll", "poll", "select"]
MODES = [("kernel", None), ("spin-forever", "-1"), ("default", None)]


def run_case(pair, prog, conf, op, restart, mode, spin, idx):
    go = pair.dir / ("go-%d" % idx)
    done = pair.dir / ("go-%d.done" % idx)
    for f in (go, done):
        if f.exists():
            f.unlink()
    env = {"BYPASS_SPIN_USEC": spin} if spin is not None else {}
    srv = pair.spawn("server", [prog, op, restart, 1, PORT, pair.cli_ip, PEER_PORT],
                     name="sigcall-%s-%s-%d" % (op, mode, idx),
                     conf=None if mode == "kernel" else conf, env=env)
    srv.wait_ready("ready", timeout=30)
    peer = pair.spawn("client", [PYTHON, str(HERE / "sig_peer.py"), op, 1, pair.srv_ip,
                                 PORT, pair.cli_ip, PEER_PORT, str(go)],
                      name="sigpeer-%s-%s-%d" % (op, mode, idx), preload=False)
    peer.wait_ready("ready", timeout=30)
    srv.wait_ready("armed", timeout=30)
    go.write_text("go")
    assert srv.wait(timeout=60) == 0, srv.describe()
    done.write_text("done")
    assert peer.wait(timeout=60) == 0, peer.describe()
    res = [l for l in srv.out().splitlines() if l.startswith("result")]
    assert len(res) == 1, srv.describe()
    got = [l for l in peer.out().splitlines() if l.startswith("peer")]
    assert got, peer.describe()
    return res[0], got[0]


@pytest.mark.slow
@pytest.mark.parametrize("op", OPS)
def test_signal_interrupts_like_kernel(netpair, cprog, op):
    prog = cprog("sigcall")
    pair = netpair(accel=("server",))
    conf = write_conf(pair.dir / "sig.conf", "bypv0", [("tcp", PORT), ("tcp", PEER_PORT)])
    idx = 0
    for restart in (0, 1):
        results = {}
        for mode, spin in MODES:
            idx += 1
            before = pair.tcp_segs("server")
            res, peer = run_case(pair, prog, conf, op, restart, mode, spin, idx)
            moved = pair.tcp_segs("server") - before
            results[mode] = res
            # The handler's one byte on connection B reached the peer.
            assert "peer b=1" in peer, (mode, res, peer)
            assert "handled=1 sent=1" in res, (mode, res)
            if mode != "kernel":
                assert moved < 40, "%s %s: kernel TCP moved %d segments" % (op, mode, moved)
        # The kernel's answer: EINTR without SA_RESTART; with it, the socket calls resume
        # and poll/select/epoll_wait still return EINTR (signal(7)).
        kernel = results["kernel"]
        if restart == 0 or op in ("epoll", "poll", "select"):
            assert "errno=EINTR" in kernel, kernel
        else:
            assert "errno=0" in kernel, kernel
        for mode in ("spin-forever", "default"):
            assert results[mode] == kernel, (
                "%s restart=%d: %s gives %r, the kernel %r" % (op, restart, mode,
                                                               results[mode], kernel))


def test_handler_calling_library_while_spinning(netpair, cprog):
    """A 1 ms timer whose handler sends on another accelerated connection, while recv
    spins on the stack (so signals land while the thread holds the stack lock): no
    deadlock, every byte the handler sent arrives, recv resumes (SA_RESTART)."""
    prog = cprog("sigcall")
    pair = netpair(accel=("server",))
    conf = write_conf(pair.dir / "sig.conf", "bypv0", [("tcp", PORT)])
    out = {}
    for i, (mode, spin) in enumerate(MODES):
        res, peer = run_case(pair, prog, conf, "storm", 1, mode, spin, 100 + i)
        err = [l for l in (pair.procs[-2].err()).splitlines() if l.startswith("storm")]
        assert err, res
        handled = int(err[0].split("handled=")[1].split()[0])
        nb = int(peer.split("b=")[1].split()[0])
        assert nb == handled, "%s: handler ran %d times, the peer got %d bytes" % (
            mode, handled, nb)
        out[mode] = res
    assert out["kernel"] == "result op=storm rc=1 errno=0 handled=many sent=all", out
    assert out["spin-forever"] == out["kernel"] and out["default"] == out["kernel"], out


BLOCKED_CHILD = r"""
import os, signal, socket, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(8)    # starts the stack when accelerated
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
pid = os.fork()
if pid == 0:
    os._exit(7)
time.sleep(0.5)                  # the signal is pending meanwhile: for this thread only
info = signal.sigtimedwait({signal.SIGCHLD}, 5)
os.waitpid(pid, 0)
for t in os.listdir("/proc/self/task"):
    st = dict(l.split(":\t", 1) for l in open("/proc/self/task/%s/status" % t).read().splitlines() if ":\t" in l)
    print("thread", t, st["Name"], st["SigBlk"], file=sys.stderr)
print("threads", len(os.listdir("/proc/self/task")), "sigchld", "caught" if info else "lost",
      flush=True)
"""


def test_blocked_signal_stays_for_the_program(netpair):
    """A signal the program blocks (to take it with sigwait or sigsuspend, as nginx's master
    does with SIGCHLD) must stay pending for it: the library's threads (DPDK's, the progress
    thread) never take it.  Side by side with the kernel."""
    pair = netpair(accel=("server",))
    conf = write_conf(pair.dir / "sigchld.conf", "bypv0", [("tcp", PORT)])
    results = {}
    for mode, c in (("kernel", None), ("accelerated", conf)):
        cp = pair.run("server", [PYTHON, "-c", BLOCKED_CHILD, PORT], conf=c, timeout=60)
        assert cp.returncode == 0, cp.stderr
        results[mode] = cp.stdout.split()
    assert results["kernel"][-1] == "caught", results
    # Under the library the process has threads of its own (else the case proves nothing).
    assert int(results["accelerated"][1]) > 1, results
    assert results["accelerated"][-1] == "caught", (
        "SIGCHLD, blocked by the program, was taken by one of the library's threads: %s" % results)
