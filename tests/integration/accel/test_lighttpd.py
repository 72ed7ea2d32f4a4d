"""lighttpd, unmodified, with a rule accelerating its port, with two forked workers
(`server.max-worker = 2`): a 1 MB file intact, wrk's answers all 2xx with no socket error,
the kernel's TCP counters of the server's namespace still.  lighttpd exports functions
named as libconfig's (config_init, config_read): it crashed in the library's constructor
while libconfig was linked (test_config_env.py::test_program_exporting_libconfig_names)."""
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .conftest import SRV_IF, assert_bypassed, write_conf

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
    d = Path(tempfile.mkdtemp(prefix="bypass-lighttpd-"))
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    d.chmod(0o755)
    (d / "www").mkdir()
    big = os.urandom(1 << 20)
    (d / "www" / "big.bin").write_bytes(big)
    (d / "www" / "small.txt").write_text("hello\n")
    (d / "lighttpd.conf").write_text(CONF.format(d=d, port=PORT, ip=net.srv_ip))
    conf = write_conf(d / "bypass.conf", SRV_IF, [("tcp", PORT)])
    # Its own session: lighttpd's master stops its workers with kill(0, SIGTERM), which would
    # reach pytest in the same process group.
    srv = net.spawn("server", ["setsid", "lighttpd", "-D", "-f", str(d / "lighttpd.conf")],
                    name="lighttpd", conf=conf)
    net.wait_port(PORT, srv)
    before = net.tcp_segs("server")
    url = "http://%s:%d" % (net.srv_ip, PORT)
    cp = subprocess.run(net.argv("client", ["sh", "-c", "curl -sS -m 20 %s/big.bin | sha256sum"
                                            % url]),
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert cp.stdout.split()[0] == hashlib.sha256(big).hexdigest(), cp.stdout + srv.describe()
    cp = net.run("client", ["wrk", "-t", "2", "-c", "20", "-d", "2", url + "/small.txt"],
                 timeout=60)
    assert cp.returncode == 0 and "Socket errors" not in cp.stdout and "Non-2xx" not in cp.stdout, (
        cp.stdout + cp.stderr + srv.describe())
    requests = int(cp.stdout.split(" requests in ")[0].split()[-1])
    assert requests > 1000, cp.stdout
    assert_bypassed(before, net.tcp_segs("server"), requests, "lighttpd")
    assert srv.poll() is None, srv.describe()
    srv.stop()
