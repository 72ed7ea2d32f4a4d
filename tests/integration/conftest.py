"""Fixtures for the integration suite: real, unmodified programs run with and
without LD_PRELOAD=build/libbypass.so, on 127.0.0.1 only.

Tests that use the library FAIL (never skip) when build/libbypass.so is
missing, so a broken build cannot pass CI.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# BYPASS_TEST_LIB runs the suite against another build of the library.
LIB = Path(os.environ.get("BYPASS_TEST_LIB") or REPO / "build" / "libbypass.so").resolve()
PYTHON = "/usr/bin/python3"  # Debian's python3, whatever is first on PATH
LOOPBACK = "127.0.0.1"

def base_env(extra=None):
    """The environment for a child: ours, minus LD_PRELOAD and every BYPASS_*
    variable (so the developer's shell cannot change a result), plus @extra."""
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith("BYPASS_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def preload_env(extra=None):
    env = base_env(extra)
    env["LD_PRELOAD"] = str(LIB)
    return env


@pytest.fixture(scope="session")
def libbypass():
    """Path to build/libbypass.so; fails the test if it was not built."""
    if not LIB.is_file():
        pytest.fail("%s is missing: the build failed or was not run "
                    "(bash scripts/setup.sh)" % LIB, pytrace=False)
    return LIB


def run(cmd, preload, env=None, timeout=60, input=None, cwd=None, check=False):
    """Run @cmd (argv list) to completion, with or without the library.

    Returns subprocess.CompletedProcess with text stdout/stderr."""
    e = preload_env(env) if preload else base_env(env)
    if preload and not LIB.is_file():
        pytest.fail("%s is missing" % LIB, pytrace=False)
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    cp = subprocess.run(cmd, env=e, cwd=cwd, timeout=timeout, **stdin,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and cp.returncode != 0:
        pytest.fail("%s exited %d (preload=%s)\nstdout:\n%s\nstderr:\n%s"
                    % (cmd, cp.returncode, preload, cp.stdout, cp.stderr), pytrace=False)
    return cp


@pytest.fixture
def runner(libbypass):
    """run() with the library checked to exist first."""
    return run


def free_port():
    """A TCP port on 127.0.0.1 that is free now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@pytest.fixture
def port():
    return free_port()


def wait_listening(port, proc=None, timeout=15.0):
    """Wait until a TCP socket listens on @port, per /proc/net/tcp (no connection made)."""
    deadline = time.monotonic() + timeout
    want = ":%04X" % port
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail("server %s exited with %s before listening on %d\nstdout:\n%s\n"
                        "stderr:\n%s" % (proc.args, proc.returncode, port, out, err),
                        pytrace=False)
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = open(table).read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                f = line.split()
                if len(f) > 3 and f[1].endswith(want) and f[3] == "0A":
                    return
        time.sleep(0.05)
    pytest.fail("nothing listens on TCP port %d after %.0fs" % (port, timeout), pytrace=False)


def wait_port(port, proc=None, timeout=15.0, host=LOOPBACK):
    """Wait until something accepts TCP connections on host:port.

    Fails early if @proc (a Popen) exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail("server %s exited with %s before listening on %d\n"
                        "stdout:\n%s\nstderr:\n%s"
                        % (proc.args, proc.returncode, port, out, err), pytrace=False)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("nothing listening on %s:%d after %.0fs" % (host, port, timeout),
                pytrace=False)


def udp_bound(port):
    """True when a UDP socket is bound to 127.0.0.1:port or *:port (from /proc/net/udp)."""
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            local = line.split()[1]
            addr, hexport = local.split(":")
            if int(hexport, 16) == port and addr in ("0100007F", "00000000"):
                return True
    return False


def wait_udp_port(port, proc=None, timeout=15.0):
    """Wait until a UDP socket is bound to @port; fails early if @proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail("server %s exited with %s before binding udp %d\n"
                        "stdout:\n%s\nstderr:\n%s"
                        % (proc.args, proc.returncode, port, out, err), pytrace=False)
        if udp_bound(port):
            return
        time.sleep(0.05)
    pytest.fail("nothing bound to udp port %d after %.0fs" % (port, timeout), pytrace=False)


def stop_pid(proc, timeout=5.0):
    """Stop one process we started: SIGTERM, then SIGKILL. Never by name."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


class Servers:
    """Starts servers and stops exactly those (by pid) at teardown."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, port, preload, env=None, cwd=None, timeout=15.0, udp=False,
              probe=True):
        """Start @cmd and wait until it listens on TCP (or binds UDP) @port.  With
        @probe False the wait reads the kernel's socket table instead of connecting (for
        servers such as iperf3 that take a probe connection for a client)."""
        e = preload_env(env) if preload else base_env(env)
        if preload and not LIB.is_file():
            pytest.fail("%s is missing" % LIB, pytrace=False)
        proc = subprocess.Popen(cmd, env=e, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        if udp:
            wait_udp_port(port, proc, timeout)
        elif not probe:
            wait_listening(port, proc, timeout)
        else:
            wait_port(port, proc, timeout)
        return proc

    def stop(self, proc):
        """Stop @proc and return its (stdout, stderr)."""
        stop_pid(proc)
        out, err = proc.communicate()
        return out, err

    def cleanup(self):
        for p in self.procs:
            try:
                stop_pid(p)
                p.communicate(timeout=5)
            except Exception:  # teardown must reach every pid
                pass


@pytest.fixture
def servers(request):
    s = Servers()
    request.addfinalizer(s.cleanup)
    return s


def bypass_lines(stderr):
    """The lines of @stderr that the library printed."""
    return [l for l in stderr.splitlines() if l.startswith("bypass:")]
