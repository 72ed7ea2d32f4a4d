"""One host for the backends without a kernel interface (memif, pci over vdevs): a network
namespace with only `lo`, in which both programs run.  The stacks' addresses are private
ones that no kernel interface of the namespace carries, so only the stacks can serve them,
and the namespace's own /proc/net/snmp proves the kernel moved no TCP segment.

Reuses the veth harness (conftest.NetPair: spawn, run, snmp, cleanup by pid), with both
"sides" mapped to the one namespace."""

import itertools
import os
import re
import subprocess
import time

import pytest

from .conftest import NetPair

_counter = itertools.count()


class OneHost(NetPair):
    """A namespace `bypm-<pid>-<n>` with lo up; processes and namespace removed by cleanup()."""

    def __init__(self, workdir):
        super().__init__(workdir, accel=())
        n = next(_counter)
        self.ns = "bypm-%d-%d" % (os.getpid(), n)
        self.k = (os.getpid() + n) % 250 + 1
        # Private addresses of the two stacks: inside the memif/vdev link only.
        self.srv_ip = "10.78.%d.1" % self.k
        self.cli_ip = "10.78.%d.2" % self.k

    def setup(self):
        self._ip("netns", "add", self.ns)
        self.created.append(self.ns)
        self._ip("-n", self.ns, "link", "set", "lo", "up")
        return self

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:  # teardown must reach every pid and the namespace
                pass
        for ns in self.created:
            self._ip("netns", "del", ns, check=False)
        self.created = []

    def ns_dev(self, side):
        return (self.ns, "lo")

    def wait_link_file(self, path, proc, timeout=30.0):
        """Waits until @path exists (a control socket, a tap created by a PMD)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return
            if proc.poll() is not None:
                pytest.fail("%s exited before creating %s\n%s" % (proc.name, path,
                                                                    proc.describe()),
                            pytrace=False)
            time.sleep(0.05)
        pytest.fail("%s not created after %.0fs\n%s" % (path, timeout, proc.describe()),
                    pytrace=False)

    def kernel_tcp_segs(self):
        return self.tcp_segs("server")


def write_backend_conf(path, backend, ip, rules, keys):
    """A config for a backend without interface: @keys is {key: value} (strings quoted)."""
    items = []
    for r in rules:
        items.append('  { action = "accelerate"; proto = "%s"; port = %d; }' % (r[0], r[1]))
    lines = ['backend = "%s";' % backend, 'ip = "%s";' % ip]
    for k, v in keys.items():
        lines.append('%s = %s;' % (k, v if isinstance(v, int) else '"%s"' % v))
    text = "\n".join(lines) + "\nrules = (\n%s\n);\n" % ",\n".join(items)
    with open(path, "w") as f:
        f.write(text)
    return str(path)


@pytest.fixture
def onehost(accel_env, tmp_path, request):
    """Factory: onehost() -> a set-up OneHost, removed after the test."""
    hosts = []

    def make():
        h = OneHost(tmp_path / ("host%d" % len(hosts)))
        hosts.append(h)
        h.setup()
        return h

    def fin():
        for h in reversed(hosts):
            h.cleanup()

    request.addfinalizer(fin)
    return make


def run_cmd(argv, timeout=30):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)


def sockperf_pingpong(h, cli_conf, port, udp=False):
    """sockperf ping-pong from the client side, busy-polling, 64 B for 3 s: at least 1,000
    messages came back.  Returns (messages, the summary's latency in usec or None).
    --mps: sockperf sizes its table of send times for 600,000 messages a second unless
    told more, and a UDP ping-pong over memif runs at about that (it then stopped with
    "_seqN > m_maxSequenceNo" one run in three)."""
    argv = ["sockperf", "pp"] + ([] if udp else ["--tcp"]) + ["-i", h.srv_ip, "-p", port,
                                                             "-m", "64", "-t", "3",
                                                             "--mps", "3000000"]
    cp = h.run("client", argv, conf=cli_conf, env={"BYPASS_SPIN_USEC": "-1"}, timeout=90,
               check=True)
    out = cp.stdout + cp.stderr
    m = re.search(r"ReceivedMessages=(\d+)", out)
    assert m and int(m.group(1)) > 1000, out
    lat = re.search(r"Summary: Latency is ([0-9.]+) usec", out)
    return int(m.group(1)), (float(lat.group(1)) if lat else None), out

