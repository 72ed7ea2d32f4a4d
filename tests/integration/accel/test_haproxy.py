"""HAProxy, unmodified, between wrk/curl and an nginx in the client's namespace, with rules
accelerating both its frontend (accepted connections) and its backend (connections it
opens), two threads, and `option splice-request` / `splice-response`: HAProxy then moves
bodies socket -> pipe -> socket with splice(2).  A 1 MB file comes back intact twice, wrk's
answers are all 2xx with no socket error, and the kernel's TCP counters of HAProxy's
namespace stay still.  Before splice was served by the stack, the kernel socket under an
accelerated connection answered ENOTCONN and HAProxy cut the 1 MB response short."""
import re
import shutil
import time

import pytest

from .conftest import (ASK, PYTHON, SRV_IF, assert_bypassed, assert_woken_on_time, http_checks,
                       web_root, write_conf)

FRONT, BACK = 8086, 9086

HAPROXY_CFG = """global
  nbthread 2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option splice-request
  option splice-response
frontend fe
  bind {srv}:{front}
  default_backend be
backend be
  server s1 {cli}:{back}
"""

NGINX_CONF = """daemon off; master_process off; pid {d}/nginx.pid; user root;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off; server {{ listen {cli}:{back}; root {d}/www; }} }}
"""


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_splice_both_sides_accelerated(netpair, request):
    net = netpair()
    d, big = web_root(request, "bypass-haproxy-")
    (d / "nginx.conf").write_text(NGINX_CONF.format(d=d, cli=net.cli_ip, back=BACK))
    (d / "haproxy.cfg").write_text(HAPROXY_CFG.format(srv=net.srv_ip, cli=net.cli_ip,
                                                      front=FRONT, back=BACK))
    backend = net.spawn("client", ["nginx", "-c", str(d / "nginx.conf"), "-e",
                                   str(d / "nginx-error.log")], name="nginx-backend")
    net.wait_port(BACK, backend, host=net.cli_ip, side="server")
    conf = write_conf(d / "bypass.conf", SRV_IF, [("tcp", FRONT), ("tcp", BACK)])
    proxy = net.spawn("server", ["haproxy", "-f", str(d / "haproxy.cfg")], name="haproxy",
                      conf=conf)
    net.wait_port(FRONT, proxy)
    before = net.tcp_segs("server")
    url = "http://%s:%d" % (net.srv_ip, FRONT)
    requests = http_checks(net, url, big, times=2, secs=2, context=proxy.describe())
    # Both sides of every request: the client's connection and HAProxy's to nginx.
    assert_bypassed(before, net.tcp_segs("server"), 2 * requests, "haproxy, both sides")
    assert_woken_on_time(proxy.pid, "haproxy, both sides")
    assert proxy.poll() is None, proxy.describe()
    assert proxy.stop() is not None
    backend.stop()


RELOAD_CFG = """global
  stats socket {d}/admin.sock mode 600 level admin expose-fd listeners
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind {srv}:{front}
  http-request return status 200 content-type text/plain string "ok"
"""

# Short connections, one after another, for @secs: "ok N fail M {errors}".
RELOAD_CLIENT = ASK + r"""
import sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + secs
ok = fail = 0
errs = {}
while time.monotonic() < end:
    try:
        r = ask(host, port, b"GET / HTTP/1.0\r\n\r\n", timeout=3)
        good = r.startswith(b"HTTP/1.0 200") or r.startswith(b"HTTP/1.1 200")
        ok += good
        fail += not good
    except OSError as e:
        fail += 1
        errs[type(e).__name__] = errs.get(type(e).__name__, 0) + 1
print("ok %d fail %d %s" % (ok, fail, errs), flush=True)
"""


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_seamless_reload(netpair, request):
    """HAProxy's seamless reload (`expose-fd listeners`, `-x`): the new process takes the
    old one's listener over its stats socket (SCM_RIGHTS), and the old one stops and
    leaves, under a client making short connections all along.  No connection fails, as on
    the kernel.  Before, the old process's stack kept the port's SYNs after it had closed
    its listener (its last connections held the steering): each reload refused one or two
    clients."""
    net = netpair()
    d, _ = web_root(request, "bypass-hreload-")
    (d / "haproxy.cfg").write_text(RELOAD_CFG.format(d=d, srv=net.srv_ip, front=FRONT + 1))
    conf = write_conf(d / "bypass.conf", SRV_IF, [("tcp", FRONT + 1)])
    for mode, c in (("kernel", None), ("accel", conf)):
        old = net.spawn("server", ["haproxy", "-f", str(d / "haproxy.cfg")],
                        name="haproxy-old-" + mode, conf=c)
        net.wait_port(FRONT + 1, old)
        cli = net.spawn("client", [PYTHON, "-c", RELOAD_CLIENT, net.srv_ip, FRONT + 1, 3],
                        name="reload-client-" + mode, preload=False)
        time.sleep(1)
        new = net.spawn("server", ["haproxy", "-f", str(d / "haproxy.cfg"), "-x",
                                   str(d / "admin.sock"), "-sf", str(old.pid)],
                        name="haproxy-new-" + mode, conf=c)
        assert cli.wait(timeout=30) == 0, cli.describe()
        ok, fail = map(int, re.match(r"ok (\d+) fail (\d+)", cli.out()).groups())
        assert ok > 100 and fail == 0, (mode, cli.out(), old.describe(), new.describe())
        assert old.wait(timeout=10) is not None, old.describe()
        assert new.poll() is None, new.describe()
        new.stop()
