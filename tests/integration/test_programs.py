"""More unmodified servers and clients under the library: sockperf (UDP and TCP),
iperf3 and nginx (master + forked workers, sendfile)."""

import hashlib
import json
import os
import re

import pytest

from conftest import PYTHON, bypass_lines, free_port, run


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_sockperf_pingpong(servers, proto, libbypass):
    port = free_port()
    tcp = ["--tcp"] if proto == "tcp" else []
    srv = servers.start(["sockperf", "server", "-i", "127.0.0.1", "-p", str(port)] + tcp,
                        port, preload=True, udp=(proto == "udp"))
    cp = run(["sockperf", "ping-pong", "-i", "127.0.0.1", "-p", str(port), "-t", "1",
              "-m", "64"] + tcp, preload=True, timeout=60, check=True)
    out = cp.stdout + cp.stderr
    assert "Summary: Latency is" in out, out
    m = re.search(r"# dropped messages = (\d+); # duplicated messages = (\d+); "
                  r"# out-of-order messages = (\d+)", out)
    assert m and m.groups() == ("0", "0", "0"), out
    received = int(re.search(r"\[Valid Duration\].*ReceivedMessages=(\d+)", out).group(1))
    assert received > 100
    assert bypass_lines(out) == []
    assert srv.poll() is None
    _, err = servers.stop(srv)
    assert bypass_lines(err) == []


@pytest.mark.parametrize("reverse", [False, True], ids=["upload", "download"])
def test_iperf3_transfer(servers, reverse, libbypass):
    port = free_port()
    # Ready when it listens: a probe connection would count as a client and can make the
    # server reset the real one.
    srv = servers.start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)], port,
                        preload=True, probe=False)
    size = 64 << 20
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", str(size), "-P", "2", "-J"]
    if reverse:
        cmd.append("-R")
    cp = run(cmd, preload=True, timeout=120, check=True)
    res = json.loads(cp.stdout)
    assert "error" not in res, res.get("error")
    sent = res["end"]["sum_sent"]["bytes"]
    received = res["end"]["sum_received"]["bytes"]
    assert sent >= size
    # iperf3's receiver total often stops short of the sender's by the last
    # in-flight interval, on the kernel too: it is a throughput tool, not a
    # byte checker (byte integrity is checked in test_sockets and pingpong).
    assert 0.75 * sent <= received <= sent
    assert bypass_lines(cp.stderr) == []
    assert srv.poll() is None
    out, err = servers.stop(srv)
    assert bypass_lines(err) == []


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 2;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
    }}
}}
"""

# A client fetching files over one keep-alive connection and by several connections.
FETCH = r"""
import hashlib, http.client, sys, threading
port = int(sys.argv[1]); names = sys.argv[2:]
out = []
c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
for n in names * 3:
    c.request("GET", "/" + n)
    r = c.getresponse()
    out.append("%s %d %s" % (n, r.status, hashlib.sha256(r.read()).hexdigest()))
c.close()
res = {}
def one(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request("GET", "/" + names[i % len(names)])
    r = c.getresponse()
    res[i] = "%d %s" % (r.status, hashlib.sha256(r.read()).hexdigest())
    c.close()
ts = [threading.Thread(target=one, args=(i,)) for i in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
out += ["par%d %s" % (i, res.get(i)) for i in range(16)]
print("\n".join(out))
"""


def test_nginx_workers_serve_files(servers, tmp_path, libbypass):
    www = tmp_path / "www"
    www.mkdir()
    files = {"small.txt": b"hello nginx\n", "big.bin": os.urandom(3 << 20)}
    for name, data in files.items():
        (www / name).write_bytes(data)
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp_path, port=port))
    names = sorted(files)
    results = {}
    for preload in (False, True):
        srv = servers.start(["nginx", "-p", str(tmp_path), "-c", str(conf),
                             "-e", str(tmp_path / "error.log")], port, preload=preload)
        results[preload] = run([PYTHON, "-c", FETCH, str(port)] + names, preload=preload,
                               timeout=60, check=True)
        assert srv.poll() is None
        _, err = servers.stop(srv)
        assert bypass_lines(err) == []
    lines = results[False].stdout.splitlines()
    want = {n: "200 " + hashlib.sha256(d).hexdigest() for n, d in files.items()}
    for line in lines[:6]:
        name, rest = line.split(" ", 1)
        assert rest == want[name]
    for i, line in enumerate(lines[6:]):
        assert line == "par%d %s" % (i, want[names[i % 2]])
    assert results[True].stdout == results[False].stdout
    assert results[True].stderr == ""
    log = (tmp_path / "error.log").read_text()
    assert "[emerg]" not in log and "[alert]" not in log and "[crit]" not in log, log
