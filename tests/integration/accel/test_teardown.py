"""Issue 3, test 6: FIN, RST and refused connections behave as the kernel's, and the
accelerated side's kernel saw none of it."""

import json

from .conftest import PYTHON, HERE, assert_bypassed, write_conf

SCRIPT = str(HERE / "teardown.py")
PORT = 7100
CLOSED = PORT + 1

# What the kernel does on both ends (Linux; checked again by the baseline test).
EXPECTED_SERVER = {
    "fin": "hello+eof", "fin_reply": "sent",
    "rst_srv_data_arrived": True, "reset_send_data_arrived": True,
    "rst_cli_recv": "ECONNRESET", "rst_cli_send": "EPIPE",
}
EXPECTED_CLIENT = {
    "fin": "bye+eof",
    "rst_srv_recv": "ECONNRESET", "rst_srv_send": "EPIPE",
    "reset_send_1": "ECONNRESET", "reset_send_2": "EPIPE",
    "reset_sigpipes_nosignal": 0, "reset_send_3": "EPIPE", "reset_sigpipes": 1,
    "reset_send_recv": "",
    "rst_cli_data_arrived": True,
    "refused_blocking": "ECONNREFUSED", "refused_nb_connect": "EINPROGRESS",
    "refused_nb_writable": True, "refused_nb_so_error": "ECONNREFUSED",
}


def play(net, srv_conf=None, cli_conf=None):
    """Runs both roles; returns (server result, client result, kernel segs srv, cli)."""
    srv = net.spawn("server", [PYTHON, SCRIPT, "server", PORT], name="teardown-srv",
                    conf=srv_conf)
    srv.wait_ready()  # not a connect probe: the server counts its connections
    before = net.tcp_segs("server"), net.tcp_segs("client")
    cli = net.run("client", [PYTHON, SCRIPT, "client", net.srv_ip, PORT, CLOSED],
                  conf=cli_conf, timeout=90)
    srv.wait(30)
    after = net.tcp_segs("server"), net.tcp_segs("client")
    assert cli.returncode == 0, "client failed:\n%s\n%s" % (cli.stdout, cli.stderr)
    assert srv.poll() == 0, srv.describe()
    return (json.loads(srv.out()), json.loads(cli.stdout),
            after[0] - before[0], after[1] - before[1])


def test_teardown_kernel_baseline(netpair):
    s, c, _, _ = play(netpair(accel=()))
    assert (s, c) == (EXPECTED_SERVER, EXPECTED_CLIENT)


def test_teardown_accelerated_matches_kernel(netpair):
    kernel = play(netpair(accel=()))
    net = netpair(accel=("server", "client"))
    srv_conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", PORT)])
    cli_conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", "%d-%d" % (PORT, CLOSED))])
    s, c, dsrv, dcli = play(net, srv_conf, cli_conf)
    assert s == kernel[0], "server side differs from the kernel's"
    assert c == kernel[1], "client side differs from the kernel's"
    # ~30 segments of teardown traffic; the refused SYNs (2 in, 2 out) reach the server's
    # kernel by design (no listener there), nothing else may.
    assert_bypassed(0, dcli, 30, "teardown, accelerated client", bound=4)
    assert_bypassed(0, dsrv, 30, "teardown, accelerated server", bound=8)
