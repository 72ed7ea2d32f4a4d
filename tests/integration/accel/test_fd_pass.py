"""Accelerated connections sent to another process over a UNIX socket (SCM_RIGHTS), as
node's cluster hands each connection its primary accepts to a worker it exec'd.  The worker
does not run this process's stack, so the connection goes to the kernel before the send
(TCP_REPAIR, with the bytes the primary has not read): the worker reads the rest of the
request and answers, as on the kernel.  Before, the worker got the unconnected kernel
socket under the accelerated fd (ENOTCONN), and node's cluster served nothing."""
import hashlib
import json
import shutil

import pytest

from .conftest import json_exchange, write_conf

PORT = 7360
N = 5

SERVER = r"""
import json, os, socket, subprocess, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
WORKER = r'''
import os, socket, sys
u = socket.socket(fileno=int(sys.argv[1]))
for i in range(int(sys.argv[2])):
    msg, fds, _, _ = socket.recv_fds(u, 100, 1)
    c = socket.socket(fileno=fds[0])
    rest = b""
    while not rest.endswith(b"\n"):
        d = c.recv(100)
        if not d:
            break
        rest += d
    c.sendall(b"worker got " + msg + rest)
    c.close()
'''
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(8)
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
worker = subprocess.Popen([sys.executable, "-c", WORKER, str(b.fileno()), str(n)],
                          pass_fds=[b.fileno()])
b.close()
print("ready", flush=True)
for i in range(n):
    c, _ = ls.accept()
    first = c.recv(6)                 # the rest of the request stays queued
    socket.send_fds(a, [first], [c.fileno()])
    c.close()
print(json.dumps({"worker": worker.wait(30)}), flush=True)
"""

CLIENT = r"""
import json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
got = []
for i in range(n):
    s = socket.create_connection((host, port))
    s.sendall(b"hello world %d\n" % i)
    r = b""
    while True:
        d = s.recv(100)
        if not d:
            break
        r += d
    got.append(r.decode())
    s.close()
print(json.dumps(got))
"""


def test_connection_sent_to_an_exec_worker(netpair):
    net = netpair()
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", PORT)])
    want = ["worker got hello world %d\n" % i for i in range(N)]
    for mode, c in (("kernel", None), ("accel", conf)):
        srv, out = json_exchange(net, SERVER, CLIENT, PORT, conf=c, name="fdpass-" + mode,
                                 args=(N,))
        assert srv == {"worker": 0}, (mode, srv)
        assert json.loads(out.strip().splitlines()[-1]) == want, (mode, out)


NODE_CLUSTER = r"""
const cluster = require('cluster');
const http = require('http');
const crypto = require('crypto');
const BIG = Buffer.concat(Array(32768).fill(crypto.createHash('sha256').update('seed').digest()));
if (cluster.isPrimary) {
  let up = 0;
  for (let i = 0; i < 2; i++)
    cluster.fork().on('listening', () => { if (++up == 2) console.log('ready'); });
  cluster.on('exit', (w, code, sig) => console.error('worker died ' + code + ' ' + sig));
} else {
  http.createServer((req, res) => {
    res.writeHead(200);
    res.end(req.url == '/big' ? BIG : 'pid ' + process.pid + '\n');
  }).listen(parseInt(process.argv[2]));
}
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="nodejs is not installed")
def test_node_cluster_round_robin(netpair):
    """node's cluster module, its default scheduling: the primary accepts (accelerated) and
    sends each connection to one of its two exec'd workers.  Both workers answer, a 1 MB
    body is intact, no worker dies (the connections reach them through the kernel)."""
    net = netpair()
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", PORT + 1)])
    script = net.dir / "cluster.js"
    script.write_text(NODE_CLUSTER)
    srv = net.spawn("server", ["node", str(script), str(PORT + 1)], name="node-cluster",
                    conf=conf, env={"NODE_CLUSTER_SCHED_POLICY": "rr"})
    srv.wait_ready()
    url = "http://%s:%d" % (net.srv_ip, PORT + 1)
    cp = net.run("client", ["sh", "-c", "curl -sS -m 10 %s/big | sha256sum; for i in $(seq 20); "
                            "do curl -sS -m 5 %s/; done" % (url, url)], timeout=60)
    lines = cp.stdout.split("\n")
    want = hashlib.sha256(hashlib.sha256(b"seed").digest() * 32768).hexdigest()
    assert lines[0].split()[0] == want, cp.stdout + srv.describe()
    pids = {l for l in lines[1:] if l.startswith("pid ")}
    assert len([l for l in lines[1:] if l.startswith("pid ")]) == 20 and len(pids) == 2, (
        cp.stdout + srv.describe())
    assert srv.poll() is None and "worker died" not in srv.err(), srv.describe()
    srv.stop()
