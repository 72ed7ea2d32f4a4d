"""Apache httpd, unmodified, with a rule accelerating its port (issue 11 names Apache prefork;
its event MPM runs threads in several forked children, a listener thread waiting on an epoll
set while worker threads add connections to it).

Daemonized (`-k start`), children as www-data, wrk (50 connections) for 2 s and a 1 MB file: every answer
200 and intact, two or more children served, none died, the kernel's TCP counters of the
server's namespace still, and a graceful stop leaves no process and no XDP program.  Under
the event MPM the children used to die of SIGBUS: a wait begun on a set without accelerated
members returned the library's own wake-fd entry when a worker thread added the first one
(test_epoll.py::test_member_added_by_another_thread_while_one_waits holds that case)."""
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import SRV_IF, assert_bypassed, assert_woken_on_time, web_root, write_conf
from .test_fork import assert_family_cleaned, kill_all, wait_gone

PORT = 8085
MODULES = "/usr/lib/apache2/modules"

HTTPD_CONF = """ServerRoot {d}
PidFile {d}/httpd.pid
Listen {port}
ServerName localhost
User www-data
Group www-data
LoadModule mpm_{mpm}_module {mods}/mod_mpm_{mpm}.so
LoadModule authz_core_module {mods}/mod_authz_core.so
ErrorLog {d}/error.log
LogLevel info
LogFormat "%P %s %b" pl
CustomLog {d}/access.log pl
DocumentRoot {d}/www
<Directory {d}/www>
  Require all granted
</Directory>
StartServers 2
GracefulShutdownTimeout 5
{extra}
"""

EXTRA = {
    "event": "",
    "prefork": "MinSpareServers 2\nMaxSpareServers 4\nMaxRequestWorkers 8",
}


def family_of(d):
    """The parent's pid (from its pid file) and its children's, or []."""
    try:
        parent = int((d / "httpd.pid").read_text())
        kids = Path("/proc/%d/task/%d/children" % (parent, parent)).read_text().split()
    except (OSError, ValueError):
        return []
    return [parent] + [int(k) for k in kids]


def stop_httpd(d, graceful=True):
    """A graceful stop of the parent by its pid, then SIGKILL for whatever is left."""
    fam = family_of(d)
    if not fam:
        return True
    try:
        os.kill(fam[0], signal.SIGWINCH if graceful else signal.SIGTERM)
    except ProcessLookupError:
        pass
    gone = wait_gone(fam, 15)
    if not gone:
        kill_all(fam)
    return gone


@pytest.mark.skipif(shutil.which("apache2") is None, reason="apache2-bin is not installed")
@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_apache_accelerated(netpair, request, mpm):
    net = netpair()
    d, big = web_root(request, "bypass-httpd-")
    request.addfinalizer(lambda: stop_httpd(d, graceful=False))
    (d / "httpd.conf").write_text(HTTPD_CONF.format(d=d, port=PORT, mpm=mpm, mods=MODULES,
                                                    extra=EXTRA[mpm]))
    conf = write_conf(d / "bypass.conf", SRV_IF, [("tcp", PORT)])
    start = net.run("server", ["apache2", "-f", str(d / "httpd.conf"), "-k", "start"],
                    conf=conf, timeout=30)
    assert start.returncode == 0, start.stdout + start.stderr
    net.wait_port(PORT)
    before = net.tcp_segs("server")
    url = "http://%s:%d" % (net.srv_ip, PORT)
    cp = subprocess.run(net.argv("client", ["sh", "-c", "curl -sS -m 20 %s/big.bin | sha256sum"
                                            % url]),
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert cp.stdout.split()[0] == hashlib.sha256(big).hexdigest(), cp.stdout
    cp = net.run("client", ["wrk", "-t", "2", "-c", "50", "-d", "2", url + "/small.txt"],
                 timeout=60)
    # More connections than its threads: the children take turns to stop listening, and
    # apache resets a few connections it closes, on the kernel too (wrk's read errors).
    assert cp.returncode == 0 and "Non-2xx" not in cp.stdout, cp.stdout + cp.stderr
    fam = family_of(d)
    assert_woken_on_time(fam, "apache " + mpm)
    assert stop_httpd(d), "apache did not stop within 15 s"
    try:
        assert_family_cleaned(net, fam)
    except AssertionError as e:
        # Which process of the server's namespace kept the family alive, and what apache
        # said about its children (a flake seen once in CI under prefork).
        left = subprocess.run(["ip", "netns", "pids", net.srv_ns], stdout=subprocess.PIPE,
                              text=True).stdout.split()
        who = [(p, Path("/proc/%s/comm" % p).read_text().strip()) for p in left
               if Path("/proc/%s/comm" % p).exists()]
        raise AssertionError("%s; family %s; left in the namespace %s\n%s" % (
            e, fam, who, (d / "error.log").read_text()[-3000:])) from e
    log = (d / "error.log").read_text()
    assert "exit signal" not in log, log[-3000:]
    served = {}
    for line in (d / "access.log").read_text().splitlines():
        pid, status, _ = line.split()
        assert status == "200", line
        served[pid] = served.get(pid, 0) + 1
    assert len(served) >= 2 and sum(served.values()) > 1000, served
    assert_bypassed(before, net.tcp_segs("server"), sum(served.values()), "apache " + mpm)
