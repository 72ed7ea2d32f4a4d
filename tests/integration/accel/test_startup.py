"""Issue 3, test 7: when the accelerated path cannot start, the program runs on the kernel
after one clear message (or exits 1 with BYPASS_STRICT=1)."""

import time

from .conftest import bypass_lines, write_conf

PORT = 6379


def redis_argv(net):
    return ["redis-server", "--port", PORT, "--bind", "0.0.0.0", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--dir", net.dir,
            "--loglevel", "warning"]


def serves_from_client_ns(net):
    cp = net.run("client", ["redis-cli", "-h", net.srv_ip, "-p", PORT],
                 input="SET fallback works\nGET fallback\nPING\n", timeout=30, check=True)
    assert cp.stdout.split() == ["OK", "works", "PONG"], cp.stdout


def one_message_naming(err, what):
    lines = bypass_lines(err)
    assert len(lines) == 1, "want exactly one bypass: line naming %s, got:\n%s" % (what, err)
    assert what in lines[0], lines[0]
    others = [l for l in err.splitlines() if l.strip() and not l.startswith("bypass:")]
    assert others == [], "stderr has more than the library's message:\n%s" % err


def test_missing_interface_falls_back_to_kernel(netpair):
    net = netpair(accel=())
    conf = write_conf(net.dir / "nosuch.conf", "nosuch0", [("tcp", PORT)])
    srv = net.spawn("server", redis_argv(net), name="redis", conf=conf)
    net.wait_port(PORT, srv)
    serves_from_client_ns(net)
    assert srv.poll() is None, srv.describe()
    assert srv.stop() == 0, srv.describe()
    one_message_naming(srv.err(), "nosuch0")


def test_missing_interface_strict_exits_1(netpair):
    net = netpair(accel=())
    conf = write_conf(net.dir / "nosuch.conf", "nosuch0", [("tcp", PORT)])
    srv = net.spawn("server", redis_argv(net), name="redis", conf=conf,
                    env={"BYPASS_STRICT": "1"})
    deadline = time.monotonic() + 15
    while srv.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert srv.poll() is not None, "BYPASS_STRICT=1 with a missing interface: still " \
        "running after 15 s\n" + srv.describe()
    assert srv.poll() == 1, srv.describe()
    assert any("nosuch0" in l for l in bypass_lines(srv.err())), srv.describe()
    assert "bypass:" not in srv.out(), "the library printed on stdout"


def test_xdp_already_attached_falls_back_to_kernel(netpair):
    """bypv0 already has an XDP program (the pass program): the af_xdp port is refused;
    the program serves through the kernel and the other program stays attached."""
    net = netpair(accel=())  # pass programs on both ends
    conf = write_conf(net.dir / "busy.conf", "bypv0", [("tcp", PORT)])
    srv = net.spawn("server", redis_argv(net), name="redis", conf=conf)
    net.wait_port(PORT, srv)
    before = net.tcp_segs("server")
    serves_from_client_ns(net)
    assert net.tcp_segs("server") - before >= 6, "the kernel did not serve the fallback"
    assert srv.stop() == 0, srv.describe()
    one_message_naming(srv.err(), "bypv0")
    link = net.run("server", ["ip", "link", "show", "bypv0"], check=True).stdout
    assert "byp_pass" in link, "the library detached a program it does not own:\n" + link


def test_program_of_a_killed_process_is_taken_over(netpair):
    """A process killed with SIGKILL cannot close its port: its steering program stays on
    bypv0.  The next accelerated process sees that the owner is gone, takes the interface
    over, and really accelerates (the kernel does not carry its traffic)."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "accel.conf", "bypv0", [("tcp", PORT)])
    first = net.spawn("server", redis_argv(net), name="redis-1", conf=conf)
    net.wait_port(PORT, first)
    serves_from_client_ns(net)
    first.popen.kill()
    first.popen.wait(timeout=10)
    link = net.run("server", ["ip", "-d", "link", "show", "bypv0"], check=True).stdout
    assert "byp_steer" in link or "prog/xdp" in link, \
        "expected the killed process's program to be left on bypv0:\n" + link

    second = net.spawn("server", redis_argv(net), name="redis-2", conf=conf)
    net.wait_port(PORT, second)
    before = net.tcp_segs("server")
    for _ in range(20):
        serves_from_client_ns(net)
    moved = net.tcp_segs("server") - before
    assert moved < 20, "the second process's traffic went through the kernel (%d segments)\n%s" \
        % (moved, second.describe())
    assert second.stop() == 0, second.describe()
    errors = [l for l in bypass_lines(second.err()) if "cannot start" in l]
    assert errors == [], second.describe()
    # A process that exits normally closes its port: the program goes with it.
    link = net.run("server", ["ip", "-d", "link", "show", "bypv0"], check=True).stdout
    assert "prog/xdp" not in link, "XDP program left after a normal exit:\n" + link
