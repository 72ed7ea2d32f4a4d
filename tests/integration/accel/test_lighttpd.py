"""lighttpd, unmodified, with a rule accelerating its port, with two forked workers
(`server.max-worker = 2`): a 1 MB file intact, wrk's answers all 2xx with no socket error,
the kernel's TCP counters of the server's namespace still.  lighttpd exports functions
named as libconfig's (config_init, config_read): it crashed in the library's constructor
while libconfig was linked (test_config_env.py::test_program_exporting_libconfig_names)."""
import shutil

import pytest

from .conftest import SRV_IF, assert_bypassed, assert_woken_on_time, http_checks, web_root, write_conf

PORT = 8091

CONF = """server.document-root = "{d}/www"
server.port = {port}
server.bind = "{ip}"
server.errorlog = "{d}/error.log"
server.max-worker = 2
mimetype.assign = ( ".txt" => "text/plain", ".bin" => "application/octet-stream" )
"""


@pytest.mark.skipif(shutil.which("lighttpd") is None, reason="lighttpd is not installed")
def test_lighttpd_accelerated(netpair, request):
    net = netpair()
    d, big = web_root(request, "bypass-lighttpd-")
    (d / "lighttpd.conf").write_text(CONF.format(d=d, port=PORT, ip=net.srv_ip))
    conf = write_conf(d / "bypass.conf", SRV_IF, [("tcp", PORT)])
    # Its own session: lighttpd's master stops its workers with kill(0, SIGTERM), which would
    # reach pytest in the same process group.
    srv = net.spawn("server", ["setsid", "lighttpd", "-D", "-f", str(d / "lighttpd.conf")],
                    name="lighttpd", conf=conf)
    net.wait_port(PORT, srv)
    before = net.tcp_segs("server")
    url = "http://%s:%d" % (net.srv_ip, PORT)
    requests = http_checks(net, url, big, secs=2, context=srv.describe())
    assert_bypassed(before, net.tcp_segs("server"), requests, "lighttpd")
    assert_woken_on_time(srv.pid, "lighttpd")
    assert srv.poll() is None, srv.describe()
    srv.stop()
