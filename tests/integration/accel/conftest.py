"""Harness for the accelerated-TCP suite: two network namespaces joined by a veth pair.

    server namespace byps-<pid>-<n>: bypv0 10.77.<k>.1/24, lo
    client namespace bypc-<pid>-<n>: bypv1 10.77.<k>.2/24, lo

Programs run inside a namespace with `ip netns exec NS env [LD_PRELOAD=... BYPASS_*=...] cmd`
so that only the program itself (not `ip`) is preloaded.  Every process is stopped by pid
and every namespace deleted (XDP detached first) in finalizers, also when a test fails.

Whether traffic bypassed the kernel is read from the namespace's own /proc/net/snmp: the
kernel's TCP segment counters of the accelerated side must stay nearly still while the test
moves many thousands of segments.

Missing prerequisites (not root, no `ip`, no library build, no XDP pass program, no redis or
gcc) FAIL the tests; the only skip is a kernel without AF_XDP sockets.
"""

import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
LIB = REPO / "build" / "libbypass.so"
XDP_PASS = REPO / "build" / "nicbackend" / "xdp_pass.bpf.o"
PYTHON = "/usr/bin/python3"  # Debian's python3, whatever is first on PATH
SRV_IF, CLI_IF = "bypv0", "bypv1"
AF_XDP = 44

# Kernel TCP segments (in + out) the accelerated side may show while an accelerated test
# runs: probes, the odd ARP-triggered or stray segment.  The traffic itself is thousands.
QUIET_SEGS = 50

_counter = itertools.count()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~20 s when the engine works "
                            "(deselect with -m 'not slow')")


def base_env(extra=None):
    """Our environment minus LD_PRELOAD and BYPASS_*, so the caller's shell cannot leak in."""
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith("BYPASS_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def _missing(msg):
    pytest.fail("accel suite prerequisite missing: " + msg, pytrace=False)


@pytest.fixture(scope="session")
def accel_env():
    """Checks what the suite needs.  Fails on anything missing, skips only without AF_XDP."""
    try:
        s = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
        s.close()
    except OSError as e:
        if e.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.EINVAL):
            pytest.skip("kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS): %s" % e)
        if e.errno != errno.EPERM:
            raise
    if os.geteuid() != 0:
        _missing("the accelerated suite must run as root (namespaces, XDP)")
    for tool in ("ip", "gcc", "redis-server", "redis-cli", "redis-benchmark", "ping"):
        if shutil.which(tool) is None:
            _missing("`%s` not found (bash scripts/setup.sh)" % tool)
    if not LIB.is_file():
        _missing("%s (the build failed or was not run: bash scripts/setup.sh)" % LIB)
    if not XDP_PASS.is_file():
        _missing("%s (built with the library)" % XDP_PASS)
    _remove_stale_namespaces()
    return LIB


def _remove_stale_namespaces():
    """Deletes namespaces left by an earlier run of this suite that was killed (named
    byps-/bypc-<pid>-<n> after a pytest pid that no longer exists).  Their processes, if
    any, are not ours to kill: they are reported."""
    listing = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True,
                             timeout=30).stdout
    for ns in re.findall(r"^(byp[sc]-(\d+)-\d+)", listing, re.M):
        name, pid = ns
        if int(pid) == os.getpid() or Path("/proc/%s" % pid).exists():
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], stdout=subprocess.PIPE,
                              text=True, timeout=30).stdout.split()
        if pids:
            print("accel: stale namespace %s still has processes %s; left alone"
                  % (name, " ".join(pids)))
            continue
        dev = SRV_IF if name.startswith("byps") else CLI_IF
        subprocess.run(["ip", "-n", name, "link", "set", "dev", dev, "xdp", "off"],
                       stderr=subprocess.DEVNULL, timeout=30)
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL, timeout=30)


# For client programs (prepended to their code): a new connection to (host, port) from
# @src (default: any) sends @data and returns all the server answers before it closes.
ASK = r"""
import socket


def ask(host, port, data, timeout=None, src=None):
    s = socket.create_connection((host, port), timeout=timeout,
                                 source_address=(src, 0) if src else None)
    s.sendall(data)
    r = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        r += d
    s.close()
    return r
"""



def run_at_once(fn, keys):
    """fn(key) for every key, each in its own thread, all at once (runs that are idle most
    of the time, each in its own namespaces).  Returns {key: result}; the first exception
    of a run is raised here, naming its key."""
    out, failed = {}, {}

    def one(k):
        try:
            out[k] = fn(k)
        except BaseException as e:   # reported by the caller's thread below
            failed[k] = e

    threads = [threading.Thread(target=one, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, e in failed.items():
        raise AssertionError("%s run: %r" % (k, e)) from e
    return out

def write_conf(path, interface, rules, extra="", backend="af_xdp"):
    """Writes a libconfig file: @rules is a list of (proto, port) or (proto, port, addr)."""
    items = []
    for r in rules:
        port = r[1] if isinstance(r[1], int) else '"%s"' % r[1]
        addr = '; addr = "%s"' % r[2] if len(r) > 2 else ""
        items.append('  { action = "accelerate"; proto = "%s"; port = %s%s; }'
                     % (r[0], port, addr))
    text = ('interface = "%s";\nbackend = "%s";\n%srules = (\n%s\n);\n'
            % (interface, backend, extra, ",\n".join(items)))
    Path(path).write_text(text)
    return str(path)


class Proc:
    """A process started inside a namespace; output goes to files (no pipe can fill)."""

    def __init__(self, popen, name, out, err):
        self.popen, self.name, self.out_path, self.err_path = popen, name, out, err

    @property
    def pid(self):
        return self.popen.pid

    def poll(self):
        return self.popen.poll()

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("%s did not finish within %.0fs\n%s" % (self.name, timeout,
                                                                 self.describe()),
                        pytrace=False)

    def out(self):
        return Path(self.out_path).read_text(errors="replace")

    def err(self):
        return Path(self.err_path).read_text(errors="replace")

    def describe(self):
        return ("%s (pid %d, exit %s)\n--- stdout:\n%s\n--- stderr:\n%s"
                % (self.name, self.pid, self.popen.returncode, self.out()[-4000:],
                   self.err()[-4000:]))

    def wait_ready(self, word="ready", timeout=30.0):
        """Waits until a line of the program's stdout or stderr starts with @word."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.out() + self.err()
            if any(l.startswith(word) for l in text.splitlines()):
                return
            if self.poll() is not None:
                pytest.fail("%s exited before it was ready\n%s" % (self.name, self.describe()),
                            pytrace=False)
            time.sleep(0.05)
        pytest.fail("%s not ready after %.0fs\n%s" % (self.name, timeout, self.describe()),
                    pytrace=False)

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL; by pid only.  Returns the exit status.  A program that
        dies of the signal (sockperf's default SIGTERM action) runs no exit handlers and
        leaves its stats file, which the next engine start would sweep: the test removes
        what its process left."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
            except ProcessLookupError:
                pass
            if self.popen.returncode is not None and self.popen.returncode < 0:
                try:
                    os.unlink("/dev/shm/bypass.%d" % self.popen.pid)
                except OSError:
                    pass
        return self.popen.returncode


class NetPair:
    """Two namespaces and a veth pair; processes and namespaces are removed by cleanup()."""

    def __init__(self, workdir, accel):
        n = next(_counter)
        self.k = (os.getpid() + n) % 250 + 1
        self.srv_ns = "byps-%d-%d" % (os.getpid(), n)
        self.cli_ns = "bypc-%d-%d" % (os.getpid(), n)
        self.srv_ip = "10.77.%d.1" % self.k
        self.cli_ip = "10.77.%d.2" % self.k
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.procs = []
        self.accel = set(accel)
        self.created = []

    # --- setup / teardown -------------------------------------------------------------

    def _ip(self, *args, check=True):
        cp = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, timeout=30)
        if check and cp.returncode != 0:
            pytest.fail("ip %s: %s" % (" ".join(args), cp.stderr.strip()), pytrace=False)
        return cp

    def setup(self):
        for ns in (self.srv_ns, self.cli_ns):
            self._ip("netns", "add", ns)
            self.created.append(ns)
        self._ip("link", "add", SRV_IF, "netns", self.srv_ns, "type", "veth",
                 "peer", "name", CLI_IF, "netns", self.cli_ns)
        for ns, dev, ip in ((self.srv_ns, SRV_IF, self.srv_ip),
                            (self.cli_ns, CLI_IF, self.cli_ip)):
            self._ip("-n", ns, "addr", "add", ip + "/24", "dev", dev)
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "link", "set", dev, "up")
            # No ethtool step: the veth keeps the kernel's default offloads.  Its partial
            # checksums are accepted by the stack (issue 7), and an XDP program on an end
            # takes GSO away from its peer, so frames fit a page.
        # A veth end receives frames redirected by the peer's native XDP only when it has
        # an XDP program itself: the ends the library does not own get a pass program
        # (the library's af_xdp port refuses an interface that already has one).
        for side in ("server", "client"):
            if side not in self.accel:
                ns, dev = self.ns_dev(side)
                self._ip("-n", ns, "link", "set", "dev", dev, "xdpdrv", "obj",
                         str(XDP_PASS), "sec", "xdp")
        # Neighbours resolved up front, both ways (ICMP stays with the kernel).
        self.run("client", ["ping", "-c", "1", "-W", "2", self.srv_ip], timeout=10,
                 check=True)
        return self

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:  # teardown must reach every pid and namespace
                pass
        for ns, dev in ((self.srv_ns, SRV_IF), (self.cli_ns, CLI_IF)):
            if ns in self.created:
                self._ip("-n", ns, "link", "set", "dev", dev, "xdp", "off", check=False)
        for ns in self.created:
            self._ip("netns", "del", ns, check=False)
        self.created = []

    # --- running programs -------------------------------------------------------------

    def ns_dev(self, side):
        return (self.srv_ns, SRV_IF) if side == "server" else (self.cli_ns, CLI_IF)

    def argv(self, side, cmd, conf=None, env=None, preload=None):
        """`ip netns exec NS env VAR=... cmd`; preloaded when @conf is given (or @preload)."""
        ns = self.ns_dev(side)[0]
        if preload is None:
            preload = conf is not None
        assigns = []
        if preload:
            assigns.append("LD_PRELOAD=%s" % LIB)
        if conf is not None:
            assigns.append("BYPASS_CONFIG=%s" % conf)
        for k, v in (env or {}).items():
            assigns.append("%s=%s" % (k, v))
        return ["ip", "netns", "exec", ns, "env"] + assigns + [str(c) for c in cmd]

    def spawn(self, side, cmd, name=None, conf=None, env=None, preload=None, nofile=None):
        """Starts @cmd in the background in @side's namespace; stopped at cleanup."""
        name = name or os.path.basename(str(cmd[0]))
        idx = len(self.procs)
        out = self.dir / ("%s-%d.out" % (name, idx))
        err = self.dir / ("%s-%d.err" % (name, idx))

        def limits():
            if nofile:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with open(out, "w") as fo, open(err, "w") as fe:
            popen = subprocess.Popen(self.argv(side, cmd, conf, env, preload),
                                     env=base_env(), stdin=subprocess.DEVNULL, stdout=fo,
                                     stderr=fe, preexec_fn=limits, cwd=str(self.dir))
        p = Proc(popen, name, out, err)
        self.procs.append(p)
        return p

    def run(self, side, cmd, conf=None, env=None, preload=None, timeout=60, input=None,
            check=False):
        """Runs @cmd to completion in @side's namespace; CompletedProcess with text output."""
        argv = self.argv(side, cmd, conf, env, preload)
        try:
            cp = subprocess.run(argv, env=base_env(), input=input, timeout=timeout,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=str(self.dir))
        except subprocess.TimeoutExpired as e:
            pytest.fail("%s timed out after %ss\nstdout:\n%s\nstderr:\n%s"
                        % (" ".join(argv), timeout, (e.stdout or b"")[-3000:],
                           (e.stderr or b"")[-3000:]), pytrace=False)
        if check and cp.returncode != 0:
            pytest.fail("%s exited %d\nstdout:\n%s\nstderr:\n%s"
                        % (" ".join(argv), cp.returncode, cp.stdout[-3000:],
                           cp.stderr[-3000:]), pytrace=False)
        return cp

    def wait_port(self, port, proc=None, host=None, side="client", timeout=30.0):
        """Connect loop from @side's namespace until @host:@port accepts (default: server)."""
        host = host or self.srv_ip
        code = ("import socket,sys,time\n"
                "d=time.monotonic()+%f\n"
                "while time.monotonic()<d:\n"
                "  try:\n"
                "    socket.create_connection((%r,%d),timeout=1).close(); sys.exit(0)\n"
                "  except OSError: time.sleep(0.1)\n"
                "sys.exit(1)\n" % (timeout, host, port))
        waiter = subprocess.Popen(self.argv(side, [PYTHON, "-c", code], preload=False),
                                  env=base_env())
        try:
            deadline = time.monotonic() + timeout + 10
            while waiter.poll() is None:
                if proc is not None and proc.poll() is not None:
                    pytest.fail("server exited before listening on %s:%d\n%s"
                                % (host, port, proc.describe()), pytrace=False)
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            if waiter.poll() is None:
                waiter.kill()
            waiter.wait()
        if waiter.returncode != 0:
            pytest.fail("nothing accepted connections on %s:%d from the %s namespace "
                        "after %.0fs%s" % (host, port, side, timeout,
                                           "\n" + proc.describe() if proc else ""),
                        pytrace=False)

    # --- kernel counters --------------------------------------------------------------

    def snmp(self, side):
        """{'Tcp.InSegs': n, 'Udp.InDatagrams': n, 'TcpExt.X': n, ...} of the namespace."""
        ns = self.ns_dev(side)[0]
        text = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp",
                               "/proc/net/netstat"], stdout=subprocess.PIPE, text=True,
                              check=True, timeout=10).stdout
        out, lines = {}, text.splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            proto, names = head.split(":", 1)
            _, values = vals.split(":", 1)
            for k, v in zip(names.split(), values.split()):
                out["%s.%s" % (proto, k)] = int(v)
        return out

    def tcp_segs(self, side):
        c = self.snmp(side)
        return c["Tcp.InSegs"] + c["Tcp.OutSegs"]


@pytest.fixture
def netpair(accel_env, tmp_path, request):
    """Factory: netpair(accel=("server",)) -> a set-up NetPair, removed after the test.

    @accel names the sides whose veth end the library will own (no pass program there)."""
    pairs = []

    def make(accel=("server",)):
        p = NetPair(tmp_path / ("net%d" % len(pairs)), accel)
        pairs.append(p)
        p.setup()
        return p

    def fin():
        for p in reversed(pairs):
            p.cleanup()

    request.addfinalizer(fin)
    return make


@pytest.fixture(scope="session")
def cprog(accel_env, tmp_path_factory):
    """cprog("epoll_server") -> path of tests/integration/accel/epoll_server.c built with gcc."""
    built = {}
    outdir = tmp_path_factory.mktemp("accel-bin")

    def build(name):
        if name not in built:
            exe = outdir / name
            cp = subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(exe),
                                 str(HERE / (name + ".c"))], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, timeout=120)
            if cp.returncode != 0:
                pytest.fail("gcc %s.c:\n%s" % (name, cp.stderr), pytrace=False)
            built[name] = exe
        return str(built[name])

    return build


def assert_bypassed(before, after, moved, what, bound=QUIET_SEGS):
    """The kernel's TCP segments (in+out) on the accelerated side moved by less than
    @bound while the test moved @moved (a lower bound on) segments or requests."""
    delta = after - before
    assert delta < bound, (
        "%s: the accelerated side's kernel TCP counters moved by %d segments (bound %d) "
        "while ~%d went over the wire: the traffic went through the kernel, not the "
        "accelerated path" % (what, delta, bound, moved))


def stat_json(pid):
    """`bypass-stat PID --json`, parsed; None (with bypass-stat's message) when it has no
    stats for @pid: (report, message)."""
    cp = subprocess.run([str(REPO / "build" / "bypass-stat"), str(pid), "--json"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    return (json.loads(cp.stdout) if cp.returncode == 0 else None), cp.stderr


def assert_woken_on_time(pids, what):
    """No wait of the family of @pids (a pid or a list: the first whose stats bypass-stat
    finds, as the file follows the member that publishes) slept a whole slice (the bound on
    a lost wake-up) past what it waited for: bypass-stat's late_wakeups.  A wake-up the
    stack owed and did not give costs that much latency; it must not happen."""
    for pid in pids if isinstance(pids, (list, tuple)) else [pids]:
        st, msg = stat_json(pid)
        if st is not None:
            break
    assert st is not None, (what, msg)
    late = st["stack"]["late_wakeups"]
    assert late == 0, "%s: %d waits were woken only when their sleep slice ended" % (what, late)


def json_exchange(net, server, client, port, conf=None, name="server", args=(),
                  client_conf=None, timeout=60):
    """The side-by-side scenario of many tests: the Python @server (argv: @port, *@args),
    preloaded with @conf (None: the kernel's), runs in the server namespace until it says
    "ready"; then the Python @client (argv: the server's address, @port, *@args) runs to
    completion from the client namespace.  Returns the server's last stdout line as JSON
    and the client's stdout."""
    srv = net.spawn("server", [PYTHON, "-c", server, port, *args], name=name, conf=conf)
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", client, net.srv_ip, port, *args], conf=client_conf,
                 timeout=timeout)
    assert cp.returncode == 0, cp.stderr + srv.describe()
    srv.wait(20)
    line = (srv.out().splitlines() or [""])[-1]
    assert line.startswith("{"), srv.describe()
    return json.loads(line), cp.stdout


def bypass_lines(text):
    return [l for l in text.splitlines() if l.startswith("bypass:")]


def web_root(request, prefix):
    """For the web-server tests: a scratch folder (removed after the test) holding
    www/big.bin (1 MB of random bytes) and www/small.txt ("hello\n"), readable by a worker
    that dropped privileges.  Returns (folder, big.bin's bytes)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    d.chmod(0o755)
    (d / "www").mkdir()
    big = os.urandom(1 << 20)
    (d / "www" / "big.bin").write_bytes(big)
    (d / "www" / "small.txt").write_text("hello\n")
    for f in (d / "www").iterdir():
        f.chmod(0o644)
    return d, big


def http_checks(net, url, big, times=1, conns=20, secs=3, context=""):
    """From the client's namespace: curl of @url/big.bin @times in a row, intact, then wrk on
    @url/small.txt: every answer 2xx, no socket error.  Returns wrk's request count."""
    cp = subprocess.run(net.argv("client", ["sh", "-c", "curl -sS -m 20 %s | sha256sum" % " ".join(
                            ["%s/big.bin" % url] * times)]),
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert cp.stdout.split()[0] == hashlib.sha256(big * times).hexdigest(), cp.stdout + context
    cp = net.run("client", ["wrk", "-t", "2", "-c", str(conns), "-d", str(secs),
                            url + "/small.txt"], timeout=60)
    assert cp.returncode == 0 and "Socket errors" not in cp.stdout and "Non-2xx" not in cp.stdout, (
        cp.stdout + cp.stderr + context)
    requests = int(cp.stdout.split(" requests in ")[0].split()[-1])
    assert requests > 1000, cp.stdout
    return requests
