"""Issue 8: the pci backend.  Without a physical NIC, the same code path (a whole DPDK port
the kernel has no address on, opened from a device string by rte_dev_probe) runs over
`dpdk_port`: a net_vhost / net_virtio_user pair (no kernel device at all), and
`net_tap0,iface=...` on two persistent tap devices in a namespace with only `lo`, joined
into a wire by tc (each one's ingress redirected to the other's egress), one per
accelerated process.  The kernel moves frames between the taps and nothing else: the
namespace's kernel TCP counters do not move.

A PCI address is checked in sysfs before DPDK starts: one that does not exist, or a NIC
still on its kernel driver, gives one message and the kernel."""

import re

from .conftest import assert_bypassed, bypass_lines
from .onehost import onehost, sockperf_pingpong, write_backend_conf  # noqa: F401  (fixture)

PORT = 6379


def tap_wire(h):
    """Two taps tpa/tpb wired back to back; returns their names."""
    for t in ("tpa", "tpb"):
        h._ip("-n", h.ns, "tuntap", "add", "dev", t, "mode", "tap", "multi_queue")
        h._ip("-n", h.ns, "link", "set", t, "up")
    for a, b in (("tpa", "tpb"), ("tpb", "tpa")):
        for cmd in (["qdisc", "add", "dev", a, "ingress"],
                    ["filter", "add", "dev", a, "ingress", "protocol", "all", "u32", "match",
                     "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", b]):
            cp = h.run("server", ["tc"] + cmd, preload=False, timeout=30)
            assert cp.returncode == 0, "tc %s: %s" % (" ".join(cmd), cp.stderr)
    return "tpa", "tpb"


def tap_confs(h, port):
    rules = [("tcp", port)]
    srv = write_backend_conf(h.dir / "srv.conf", "pci", h.srv_ip + "/24", rules,
                             {"dpdk_port": "net_tap0,iface=tpa"})
    cli = write_backend_conf(h.dir / "cli.conf", "pci", h.cli_ip + "/24", rules,
                             {"dpdk_port": "net_tap0,iface=tpb"})
    return srv, cli


def redis_argv(h, port=PORT):
    return ["redis-server", "--port", port, "--bind", "0.0.0.0", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--dir", h.dir,
            "--loglevel", "warning"]


def redis_both_accelerated(h, srv_conf, cli_conf, what):
    """redis-server and its clients both on the stack: 200 SET/GET answered right, a
    redis-benchmark run, and the host kernel carried none of it.  Returns the server."""
    srv = h.spawn("server", redis_argv(h), name="redis", conf=srv_conf,
                  env={"BYPASS_LOG": "info"})
    srv.wait_ready("bypass: tcp listener on port %d accelerated" % PORT)
    before = h.kernel_tcp_segs()
    script = "".join("SET k%d v%d\nGET k%d\n" % (i, i, i) for i in range(200))
    cp = h.run("client", ["redis-cli", "-h", h.srv_ip, "-p", PORT], conf=cli_conf,
               input=script, timeout=60, check=True)
    assert cp.stdout.split() == sum((["OK", "v%d" % i] for i in range(200)), []), cp.stderr[-3000:]
    cp = h.run("client", ["redis-benchmark", "-h", h.srv_ip, "-p", PORT, "-n", "20000",
                          "-c", "10", "-t", "set,get", "-q"], conf=cli_conf, timeout=120,
               check=True)
    rates = re.findall(r"(SET|GET): ([0-9.]+) requests per second", cp.stdout)
    assert len(rates) == 2 and all(float(r) > 0 for _, r in rates), cp.stdout + cp.stderr
    assert_bypassed(before, h.kernel_tcp_segs(), 40000, what, bound=1)
    return srv


def test_pci_dpdk_port_redis(onehost):
    h = onehost()
    tap_wire(h)
    srv_conf, cli_conf = tap_confs(h, PORT)
    srv = redis_both_accelerated(h, srv_conf, cli_conf, "redis over a dpdk_port pair")
    assert any("backend pci" in l for l in bypass_lines(srv.err())), srv.describe()


def test_pci_tap_signal_never_reaches_the_program(onehost, cprog):
    """net_tap asks for a real-time signal on its queues' fds: owned by the process, the
    kernel gave it to the main thread, whose poll() ended with EINTR although the program
    installed no handler (redis-cli: "Could not connect ... poll(2): Interrupted system
    call").  A thread does redis PINGs over the tap port for 2 s while the main thread
    sleeps in poll() on a pipe: no EINTR, as on the kernel."""
    h = onehost()
    tap_wire(h)
    srv_conf, cli_conf = tap_confs(h, PORT)
    srv = h.spawn("server", redis_argv(h), name="redis", conf=srv_conf,
                  env={"BYPASS_LOG": "info"})
    srv.wait_ready("bypass: tcp listener on port %d accelerated" % PORT)
    cp = h.run("client", [cprog("tap_eintr"), h.srv_ip, PORT, "2"], conf=cli_conf,
               timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr[-2000:]
    words = cp.stdout.split()
    got = dict(zip(words[::2], map(int, words[1::2])))
    assert got["pongs"] > 100 and got["polls"] > 20, cp.stdout
    assert got["eintr"] == 0, cp.stdout


def test_pci_dpdk_port_sockperf_tcp(onehost):
    h = onehost()
    tap_wire(h)
    port = 11111
    srv_conf, cli_conf = tap_confs(h, port)
    env = {"BYPASS_LOG": "info", "BYPASS_SPIN_USEC": "-1"}
    srv = h.spawn("server", ["sockperf", "sr", "--tcp", "-i", "0.0.0.0", "-p", port],
                  name="sockperf-sr", conf=srv_conf, env=env)
    srv.wait_ready("bypass: tcp listener on port %d accelerated" % port)
    before = h.kernel_tcp_segs()
    msgs, _, _ = sockperf_pingpong(h, cli_conf, port)
    after = h.kernel_tcp_segs()
    assert_bypassed(before, after, msgs, "sockperf over a dpdk_port pair", bound=1)


def test_pci_dpdk_port_vhost_virtio_user_pair(onehost):
    """Both ends on a DPDK vdev pair with no kernel device at all: net_vhost in the server,
    net_virtio_user in the client, over a vhost-user socket in the test's folder."""
    h = onehost()
    sock = str(h.dir / "vhost.sock")
    rules = [("tcp", PORT)]
    srv_conf = write_backend_conf(h.dir / "srv.conf", "pci", h.srv_ip + "/24", rules,
                                  {"dpdk_port": "net_vhost0,iface=%s,queues=1" % sock})
    cli_conf = write_backend_conf(h.dir / "cli.conf", "pci", h.cli_ip + "/24", rules,
                                  {"dpdk_port": "net_virtio_user0,path=%s,queues=1" % sock})
    redis_both_accelerated(h, srv_conf, cli_conf, "redis over vhost/virtio-user")


def kernel_fallback(h, pci, port=PORT):
    """redis-server with backend pci and @pci: returns (its bypass lines, kernel opens)."""
    conf = write_backend_conf(h.dir / "pci.conf", "pci", h.srv_ip + "/24", [("tcp", port)],
                              {"pci": pci})
    srv = h.spawn("server", redis_argv(h, port), name="redis", conf=conf)
    h.wait_port(port, srv, host="127.0.0.1")
    before = h.snmp("server")["Tcp.PassiveOpens"]
    cp = h.run("client", ["redis-cli", "-h", "127.0.0.1", "-p", port, "PING"], timeout=30,
               check=True)
    assert cp.stdout.strip() == "PONG"
    assert h.snmp("server")["Tcp.PassiveOpens"] > before, "the kernel did not serve it"
    assert srv.poll() is None, srv.describe()
    return bypass_lines(srv.err())


def test_pci_missing_address_falls_back(onehost):
    h = onehost()
    lines = kernel_fallback(h, "0000:7f:1f.7")
    assert len(lines) == 1, lines
    assert "no PCI device 0000:7f:1f.7" in lines[0], lines


def test_pci_nic_on_kernel_driver_is_left_alone(onehost):
    """A PCI device of this machine on its kernel driver (the NIC first): refused from
    sysfs alone; DPDK never starts, so the device is not touched."""
    import os
    root = "/sys/bus/pci/devices"

    def driver(d):
        p = os.path.join(root, d, "driver")
        return os.path.basename(os.readlink(p)) if os.path.exists(p) else None

    devs = [d for d in sorted(os.listdir(root))
            if driver(d) not in (None, "vfio-pci", "uio_pci_generic", "igb_uio")]
    devs.sort(key=lambda d: not open(os.path.join(root, d, "class")).read().startswith("0x02"))
    assert devs, "no PCI device on a kernel driver on this machine"
    lines = kernel_fallback(onehost(), devs[0])
    assert len(lines) == 1, lines
    assert "bind it to vfio-pci" in lines[0] and devs[0] in lines[0], lines
    assert driver(devs[0]) not in (None, "vfio-pci"), "the device changed driver"
