"""Routed topologies for the kernel-mirror tests: client — router — server, built like
conftest.NetPair (same process handling, same cleanup guarantees), with no ethtool step:
every veth keeps the kernel's default offloads.

    server  bypv0 10.81.K.1/24, default via 10.81.K.254       (ns bypm-P-N-srv)
    r1      br0 10.81.K.254/24 (bridge over s0, s2), r1c 10.82.K.254/24, ip_forward
    client  bypv1 10.82.K.1/24, 10.81.K.0/24 via 10.82.K.254  (ns bypm-P-N-cli)
  with r2=True, a second router on the server's link:
    r2      r2s 10.81.K.253/24 (peer s2 on r1's bridge), r2c 10.83.K.254/24, ip_forward,
            10.82.K.0/24 via 10.83.K.1
    client  cv2 10.83.K.1/24 (rp_filter off: replies through r2 arrive on cv2)
  with far=True, a host behind the server's second interface:
    server  bypx0 10.84.K.1/24;  far  bypx1 10.84.K.2/24        (ns bypm-P-N-far)

Only the server's and client's bypv0/bypv1 may be accelerated.
"""

import itertools
import os
import subprocess

from .conftest import NetPair

_ids = itertools.count()


class RoutedNet(NetPair):
    def __init__(self, workdir, accel, r2=False, far=False):
        super().__init__(workdir, accel)
        n = next(_ids)
        self.k = (os.getpid() + n) % 250 + 1
        base = "bypm-%d-%d" % (os.getpid(), n)
        self.ns = {"server": base + "-srv", "client": base + "-cli", "r1": base + "-r1"}
        if r2:
            self.ns["r2"] = base + "-r2"
        if far:
            self.ns["far"] = base + "-far"
        self.srv_ns, self.cli_ns = self.ns["server"], self.ns["client"]
        k = self.k
        self.srv_ip = "10.81.%d.1" % k
        self.cli_ip = "10.82.%d.1" % k
        self.r1_ip = "10.81.%d.254" % k
        self.r2_ip = "10.81.%d.253" % k
        self.far_ip = "10.84.%d.2" % k

    def ns_dev(self, side):
        dev = {"server": "bypv0", "client": "bypv1"}.get(side, "")
        return self.ns[side], dev

    def sh(self, side, *args, check=True):
        return self._ip("-n", self.ns[side], *args, check=check)

    def sysctl(self, side, key, value):
        subprocess.run(["ip", "netns", "exec", self.ns[side], "sysctl", "-qw",
                        "%s=%s" % (key, value)], check=True, timeout=30)

    def veth(self, a, adev, b, bdev):
        self._ip("link", "add", adev, "netns", self.ns[a], "type", "veth", "peer", "name",
                 bdev, "netns", self.ns[b])

    def setup(self):
        k = self.k
        for ns in self.ns.values():
            self._ip("netns", "add", ns)
            self.created.append(ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
        self.sh("r1", "link", "add", "br0", "type", "bridge")
        self.veth("server", "bypv0", "r1", "s0")
        self.veth("client", "bypv1", "r1", "r1c")
        self.sh("r1", "link", "set", "s0", "master", "br0")
        self.sh("server", "addr", "add", self.srv_ip + "/24", "dev", "bypv0")
        self.sh("r1", "addr", "add", self.r1_ip + "/24", "dev", "br0")
        self.sh("r1", "addr", "add", "10.82.%d.254/24" % k, "dev", "r1c")
        self.sh("client", "addr", "add", self.cli_ip + "/24", "dev", "bypv1")
        for side, devs in (("server", ["bypv0"]), ("r1", ["br0", "s0", "r1c"]),
                           ("client", ["bypv1"])):
            for d in devs:
                self.sh(side, "link", "set", d, "up")
        self.sysctl("r1", "net.ipv4.ip_forward", 1)
        self.sh("server", "route", "add", "default", "via", self.r1_ip)
        self.sh("client", "route", "add", "10.81.%d.0/24" % k, "via", "10.82.%d.254" % k)
        if "r2" in self.ns:
            self.veth("r2", "r2s", "r1", "s2")
            self.veth("client", "cv2", "r2", "r2c")
            self.sh("r1", "link", "set", "s2", "master", "br0")
            self.sh("r2", "addr", "add", self.r2_ip + "/24", "dev", "r2s")
            self.sh("r2", "addr", "add", "10.83.%d.254/24" % k, "dev", "r2c")
            self.sh("client", "addr", "add", "10.83.%d.1/24" % k, "dev", "cv2")
            for side, d in (("r1", "s2"), ("r2", "r2s"), ("r2", "r2c"), ("client", "cv2")):
                self.sh(side, "link", "set", d, "up")
            self.sysctl("r2", "net.ipv4.ip_forward", 1)
            self.sh("r2", "route", "add", "10.82.%d.0/24" % k, "via", "10.83.%d.1" % k)
            for key in ("all", "cv2", "default"):
                self.sysctl("client", "net.ipv4.conf.%s.rp_filter" % key, 0)
        if "far" in self.ns:
            self.veth("server", "bypx0", "far", "bypx1")
            self.sh("server", "addr", "add", "10.84.%d.1/24" % k, "dev", "bypx0")
            self.sh("far", "addr", "add", self.far_ip + "/24", "dev", "bypx1")
            self.sh("server", "link", "set", "bypx0", "up")
            self.sh("far", "link", "set", "bypx1", "up")
        # The path works through the kernel both ways before any test uses it.
        self.run("client", ["ping", "-c", "1", "-W", "5", self.srv_ip], timeout=20,
                 check=True)
        return self

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:  # teardown must reach every pid and namespace
                pass
        for side in ("server", "client"):
            if self.ns[side] in self.created:
                ns, dev = self.ns_dev(side)
                self._ip("-n", ns, "link", "set", "dev", dev, "xdp", "off", check=False)
        for ns in self.created:
            self._ip("netns", "del", ns, check=False)
        self.created = []
