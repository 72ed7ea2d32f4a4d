"""HAProxy, unmodified, between wrk/curl and an nginx in the client's namespace, with rules
accelerating both its frontend (accepted connections) and its backend (connections it
opens), two threads, and `option splice-request` / `splice-response`: HAProxy then moves
bodies socket -> pipe -> socket with splice(2).  A 1 MB file comes back intact twice, wrk's
answers are all 2xx with no socket error, and the kernel's TCP counters of HAProxy's
namespace stay still.  Before splice was served by the stack, the kernel socket under an
accelerated connection answered ENOTCONN and HAProxy cut the 1 MB response short."""
import shutil

import pytest

from .conftest import SRV_IF, assert_bypassed, http_checks, web_root, write_conf

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
    assert proxy.poll() is None, proxy.describe()
    assert proxy.stop() is not None
    backend.stop()
