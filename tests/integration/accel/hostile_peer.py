"""Hostile peer for test_hostile.py (issue 12), run as root in the client namespace.

    hostile_peer.py IFACE SERVER_IP SERVER_MAC PORT SPOOF_IP CASE [CASE...]

Speaks TCP by hand with scapy from SPOOF_IP (an address no kernel owns: the server's
kernel has a static neighbour entry for it, the client's kernel drops what comes back, so
nobody answers with a reset behind our back) to an echo server on SERVER_IP:PORT.  Each
case prints one line "case NAME: RESULT" whose RESULT is the same for a correct server,
accelerated or kernel; the test compares the two side by side.
"""
import errno
import os
import random
import select
import socket
import struct
import sys
import time

from scapy.all import IP, TCP, UDP, Ether, Raw, conf, fragment, get_if_hwaddr  # noqa: E402

conf.verb = 0
IFACE, SRV, SRV_MAC, PORT, ME = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
MY_MAC = get_if_hwaddr(IFACE)
ETH_P_ALL = 3

rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
rx.bind((IFACE, 0))
tx = rx
PORTS = iter(random.sample(range(20000, 60000), 30000))


def send(pkt):
    tx.send(bytes(Ether(src=MY_MAC, dst=SRV_MAC) / pkt))


def send_raw(frame):
    tx.send(frame)


def drain():
    while select.select([rx], [], [], 0)[0]:
        rx.recv(65535)


def packets(timeout, sport=None, pred=None):
    """TCP segments from the server (to sport, if given) during @timeout seconds; with
    @pred, returns as soon as one satisfies it (the last in the list)."""
    out, end = [], time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([rx], [], [], left)[0]:
            return out
        data, addr = rx.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        e = Ether(data)
        if IP in e and TCP in e and e[IP].src == SRV and e[TCP].sport == PORT and \
                e[IP].dst == ME and (sport is None or e[TCP].dport == sport):
            out.append(e)
            if pred is not None and pred(e[TCP]):
                return out


def first(pred, timeout, sport):
    ps = packets(timeout, sport, pred)
    return ps[-1] if ps and pred(ps[-1][TCP]) else None


class Flow:
    """One hand-driven connection; rcv_nxt/snd_nxt from our side's point of view."""

    def __init__(self, win=65535, mss=1460, wscale=None):
        self.sport = next(PORTS)
        self.seq = random.randrange(1 << 32)
        self.win = win
        self.got = {}          # server seq -> payload
        opts = [("MSS", mss)]
        if wscale is not None:
            opts.append(("WScale", wscale))
        drain()
        send(IP(src=ME, dst=SRV) / TCP(sport=self.sport, dport=PORT, flags="S", seq=self.seq,
                                        window=win, options=opts))
        sa = first(lambda t: t.flags & 0x12 == 0x12, 3, self.sport)
        if sa is None:
            raise RuntimeError("no SYN-ACK")
        self.isn = sa[TCP].seq
        self.seq += 1
        self.rcv = self.isn + 1
        self.ack()

    def seg(self, flags="A", data=b"", seq=None, ack=None, win=None, **kw):
        t = TCP(sport=self.sport, dport=PORT, flags=flags,
                seq=(self.seq if seq is None else seq) & 0xffffffff,
                ack=(self.rcv if ack is None else ack) & 0xffffffff,
                window=self.win if win is None else win, **kw)
        send(IP(src=ME, dst=SRV) / t / Raw(data) if data else IP(src=ME, dst=SRV) / t)

    def ack(self, win=None):
        self.seg("A", win=win)

    def data(self, payload, seq=None):
        self.seg("PA", payload, seq=seq)
        if seq is None:
            self.seq += len(payload)

    def collect(self, timeout, ack=True, quiet=None):
        """Server segments for @timeout s (or until @quiet s pass with none); data is
        stored by sequence number and acknowledged in order when @ack."""
        segs, end = [], time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < end:
            ps = packets(0.05, self.sport)
            if ps:
                last = time.monotonic()
            elif quiet and time.monotonic() - last > quiet:
                break
            for p in ps:
                t = p[TCP]
                segs.append(t)
                n = len(bytes(t.payload))
                if n:
                    self.got[t.seq] = bytes(t.payload)
            if ack and ps:
                self.advance()
                self.ack()
        return segs

    def advance(self):
        """rcv_nxt: past the contiguous bytes received."""
        self.rcv = (self.isn + 1 + len(self.stream())) & 0xffffffff

    def stream(self):
        """The server's bytes from its first data byte, in order, as far as contiguous."""
        out, pos = b"", (self.isn + 1) & 0xffffffff
        while True:
            for s, d in self.got.items():
                off = (pos - s) & 0xffffffff
                if off < len(d):
                    out += d[off:]
                    pos = (pos + len(d) - off) & 0xffffffff
                    break
            else:
                return out

    def echo(self, payload, timeout=3):
        """Sends @payload and returns what the server echoed back."""
        before = len(self.stream())
        self.data(payload)
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.stream()) < before + len(payload):
            self.collect(0.2)
        return self.stream()[before:]

    def close(self):
        self.seg("R")


# ---- cases ---------------------------------------------------------------------------

def syn(sport, **ip):
    return IP(src=ME, dst=SRV, **ip) / TCP(sport=sport, dport=PORT, flags="S",
                                            seq=random.randrange(1 << 32))


def answered(build):
    """Sends the frame @build(sport) returns; whether a SYN-ACK or RST came back."""
    sport = next(PORTS)
    drain()
    frame = build(sport)
    send_raw(frame) if isinstance(frame, bytes) else send(frame)
    p = first(lambda t: True, 0.6, sport)
    if p is None:
        return "silent"
    if p[TCP].flags & 0x12 == 0x12:
        send(IP(src=ME, dst=SRV) / TCP(sport=sport, dport=PORT, flags="R",
                                        seq=p[TCP].ack))
        return "synack"
    return "flags=%s" % p[TCP].flags


def eth(ip_bytes):
    return bytes(Ether(src=MY_MAC, dst=SRV_MAC, type=0x0800)) + ip_bytes


def set_ip(pkt, **fields):
    """The IP packet's bytes with header fields rewritten after scapy computed the rest."""
    b = bytearray(bytes(pkt))
    if "ihl" in fields:
        b[0] = 0x40 | fields["ihl"]
    if "tot_len" in fields:
        b[2:4] = struct.pack("!H", fields["tot_len"])
    if "ip_csum" in fields:
        b[10:12] = struct.pack("!H", fields["ip_csum"])
    if "doff" in fields:
        b[20 + 12] = fields["doff"] << 4
    return bytes(b)


MALFORMED = {
    "good-syn": lambda s: syn(s),
    "tcp-bad-csum": lambda s: IP(src=ME, dst=SRV) / TCP(sport=s, dport=PORT, flags="S",
                                                       chksum=0x1234),
    "ip-bad-csum": lambda s: eth(set_ip(syn(s), ip_csum=0x4321)),
    "udp-bad-csum": lambda s: IP(src=ME, dst=SRV) / UDP(sport=s, dport=PORT, chksum=0x77) /
    Raw(b"x" * 20),
    "truncated-ip": lambda s: eth(bytes(syn(s))[:12]),
    "truncated-tcp": lambda s: eth(set_ip(syn(s), tot_len=30)[:30]),
    "ihl-below-5": lambda s: eth(set_ip(syn(s), ihl=3)),
    "ihl-past-frame": lambda s: eth(set_ip(syn(s), ihl=15)),
    "doff-past-segment": lambda s: eth(set_ip(syn(s), doff=15)),
    "doff-below-5": lambda s: eth(set_ip(syn(s), doff=2)),
    "totlen-above-frame": lambda s: eth(set_ip(syn(s), tot_len=200)),
    "totlen-below-header": lambda s: eth(set_ip(syn(s), tot_len=24)),
    "opt-zero-length": lambda s: IP(src=ME, dst=SRV) / TCP(sport=s, dport=PORT, flags="S",
                                                          options=[(2, b"")]),
    "opt-excessive-length": lambda s: IP(src=ME, dst=SRV) / TCP(
        sport=s, dport=PORT, flags="S", options=[(8, b"\x00" * 30)]),
    "ttl-0": lambda s: syn(s, ttl=0),
}


def case_malformed():
    out = []
    for name, build in MALFORMED.items():
        out.append("%s=%s" % (name, answered(build)))
    # A fragmented SYN: every fragment, then see what answers.
    sport = next(PORTS)
    drain()
    for f in fragment(IP(src=ME, dst=SRV) / TCP(sport=sport, dport=PORT, flags="S",
                                                seq=1000) / Raw(b"f" * 64), fragsize=24):
        send(f)
    p = first(lambda t: True, 1.0, sport)
    out.append("fragments=%s" % ("none" if p is None else "flags=%s" % p[TCP].flags))
    if p is not None:
        send(IP(src=ME, dst=SRV) / TCP(sport=sport, dport=PORT, flags="R", seq=1001 + 64))
    return " ".join(out)


def case_garbage(n=10000):
    """@n frames of random bytes behind a valid Ethernet/IPv4 header start."""
    rnd = random.Random(12)
    head = bytes(Ether(src=MY_MAC, dst=SRV_MAC, type=0x0800))
    srv = socket.inet_aton(SRV)
    for i in range(n):
        body = bytearray(rnd.randbytes(rnd.randrange(1, 120)))
        if i % 2 and len(body) >= 20:
            # Half of them look like IPv4 to our server with a random protocol field.
            body[0] = 0x45
            body[9] = rnd.choice((6, 17, rnd.randrange(256)))
            body[16:20] = srv
        send_raw(head + bytes(body))
    return "sent=%d" % n


def case_rfc5961():
    f = Flow()
    res = []
    assert f.echo(b"hello") == b"hello"
    # An RST inside the window, not at rcv_nxt: challenge ACK, connection lives.
    drain()
    f.seg("R", seq=f.seq + 1000)
    p = first(lambda t: t.flags & 0x10 and not t.flags & 0x04, 1.5, f.sport)
    res.append("rst-in-window=%s" % ("challenge-ack" if p is not None and p[TCP].ack == f.seq
                                     else "none"))
    res.append("alive=%s" % (f.echo(b"after-rst") == b"after-rst"))
    # A SYN inside the window of a live connection: challenge ACK (the kernel sends at
    # most one per 500 ms on a connection: net.ipv4.tcp_invalid_ratelimit).
    time.sleep(0.7)
    drain()
    f.seg("S", seq=f.seq + 10)
    p = first(lambda t: t.flags & 0x10 and not t.flags & 0x04, 1.5, f.sport)
    res.append("syn-in-window=%s" % ("challenge-ack" if p is not None and p[TCP].ack == f.seq
                                     else "none"))
    res.append("alive=%s" % (f.echo(b"after-syn") == b"after-syn"))
    # Data whose ACK acknowledges bytes never sent: ignored (not echoed).
    f.seg("PA", b"bogus", ack=f.rcv + 100000)
    f.collect(0.5, quiet=0.3)
    res.append("after-bad-ack=%r" % f.echo(b"good", timeout=3))
    # An RST at exactly rcv_nxt ends it.
    drain()
    f.seg("R")
    time.sleep(0.3)
    res.append("exact-rst-then-echo=%r" % f.echo(b"dead?", timeout=1.5))
    return " ".join(res)


def case_overlap():
    """Out-of-order and overlapping segments with conflicting bytes; what comes back.
    Which copy of an overlapped byte wins is the receiver's choice (RFC 793 leaves it
    open): the result names, per byte, whether it is one that was sent for that place."""
    f = Flow()
    base = f.seq
    f.data(b"KLMNO", seq=base + 10)          # out of order
    f.data(b"FGHIJ", seq=base + 5)           # out of order, fills the middle
    f.data(b"zzzzzzXYZ", seq=base + 7)       # overlaps both with other bytes
    f.data(b"ABCDEFG", seq=base)             # the start, overlapping FG
    f.seq = base + 16
    f.data(b"!")
    end = time.monotonic() + 4
    while time.monotonic() < end and len(f.stream()) < 17:
        f.collect(0.2)
    s = f.stream()
    f.close()
    sent = {}
    for off, d in ((10, b"KLMNO"), (5, b"FGHIJ"), (7, b"zzzzzzXYZ"), (0, b"ABCDEFG"),
                   (16, b"!")):
        for i, ch in enumerate(d):
            sent.setdefault(off + i, set()).add(ch)
    ok = len(s) == 17 and all(ch in sent[i] for i, ch in enumerate(s))
    print("overlap echo %r" % s, file=sys.stderr)
    return "length=%d each-byte-one-sent-there=%s" % (len(s), ok)


def case_window_probe():
    f = Flow()
    assert f.echo(b"x") == b"x"
    drain()
    f.seg("A", seq=f.seq - 1)                # a keep-alive / window probe shape
    p = first(lambda t: t.flags & 0x10, 1.5, f.sport)
    ok = p is not None and p[TCP].ack == f.seq
    alive = f.echo(b"probe-ok") == b"probe-ok"
    f.close()
    return "probe-answered=%s alive=%s" % (ok, alive)


def case_zero_window():
    """The peer's window fills and it stops reading: the server must send no byte past
    the window's right edge, only probes; opening the window delivers the rest."""
    f = Flow(win=2000)
    payload = bytes(random.Random(5).randbytes(6000))
    for i in range(0, 6000, 1000):
        f.data(payload[i:i + 1000])
    # Take what fits in 2000 bytes, then advertise a zero window at that point.
    end = time.monotonic() + 3
    while time.monotonic() < end and len(f.stream()) < 2000:
        f.collect(0.2, ack=False)
    f.advance()
    edge = f.rcv
    f.win = 0
    f.ack()
    segs = f.collect(4, ack=False)   # lwIP's first probe comes after 1.5 s, the kernel's sooner
    beyond = sum(1 for t in segs if len(bytes(t.payload)) > 0 and
                 ((t.seq + len(bytes(t.payload)) - edge) & 0xffffffff) < (1 << 31) and
                 (t.seq + len(bytes(t.payload))) & 0xffffffff != edge)
    probes = sum(1 for t in segs)
    # Window opens: everything arrives, intact.
    f.win = 65535
    f.ack()
    end = time.monotonic() + 10
    while time.monotonic() < end and len(f.stream()) < 6000:
        f.collect(0.2)
    ok = f.stream() == payload
    f.close()
    return "beyond-window=%d probes=%s intact=%s" % (beyond, "yes" if probes else "no", ok)


def case_mss1():
    f = Flow(mss=1)
    payload = bytes(random.Random(6).randbytes(1000))
    f.data(payload)
    end = time.monotonic() + 15
    sizes = []
    while time.monotonic() < end and len(f.stream()) < 1000:
        sizes += [len(bytes(t.payload)) for t in f.collect(0.2) if len(bytes(t.payload))]
    ok = f.stream() == payload
    f.close()
    print("mss1 segment sizes: %s" % sorted(set(sizes)), file=sys.stderr)
    return "intact=%s smallest-full-segment>=32=%s" % (
        ok, bool(sizes) and sorted(sizes)[len(sizes) // 2] >= 32)


def case_isn(n=1000):
    """Initial sequence numbers of @n connection attempts from ports 40000..; printed."""
    isns = []
    for i in range(n):
        sport = 40000 + i
        drain()
        for _ in range(3):   # a SYN lost on the way is sent again, as a client would
            send(IP(src=ME, dst=SRV) / TCP(sport=sport, dport=PORT, flags="S", seq=7))
            p = first(lambda t: t.flags & 0x12 == 0x12, 1, sport)
            if p is not None:
                break
        if p is None:
            isns.append(-1)
            continue
        isns.append(p[TCP].seq)
        send(IP(src=ME, dst=SRV) / TCP(sport=sport, dport=PORT, flags="R", seq=8))
    return "isns=" + ",".join(str(x) for x in isns)


def case_evicted_ack():
    """A handshake whose ACK and first data were lost (as a SYN flood's own frames make a
    receive ring drop them): SYN, SYN-ACK, then 1,100 spoofed SYNs (more than the
    accelerated listener's 1,024 half-open connections: ours is evicted), then the pure ACK
    the client sends later, past its 5 lost bytes, then those bytes again.  The kernel
    keeps the half-open connection and takes both; so must the stack, from its record of
    the evicted one (it reset the client before)."""
    sport, seq = next(PORTS), random.randrange(1 << 32)
    drain()
    send(IP(src=ME, dst=SRV) / TCP(sport=sport, dport=PORT, flags="S", seq=seq, window=65535,
                                    options=[("MSS", 1460)]))
    sa = first(lambda t: t.flags & 0x12 == 0x12, 3, sport)
    if sa is None:
        return "no-synack"
    rcv = (sa[TCP].seq + 1) & 0xffffffff
    case_synflood(1100)
    time.sleep(0.5)
    drain()
    send(IP(src=ME, dst=SRV) / TCP(sport=sport, dport=PORT, flags="A", seq=(seq + 6) & 0xffffffff,
                                    ack=rcv, window=65535))
    p = first(lambda t: True, 1.0, sport)
    reset = p is not None and bool(p[TCP].flags & 0x04)
    send(IP(src=ME, dst=SRV) / TCP(sport=sport, dport=PORT, flags="PA", seq=(seq + 1) & 0xffffffff,
                                    ack=rcv, window=65535) / Raw(b"hello"))
    echo = b""
    for p in packets(2.0, sport, lambda t: len(bytes(t.payload)) >= 5):
        if p[TCP].seq == rcv:
            echo = bytes(p[TCP].payload)
    send(IP(src=ME, dst=SRV) / TCP(sport=sport, dport=PORT, flags="R",
                                    seq=(seq + 6) & 0xffffffff))
    return "reset=%s echo=%r" % (reset, echo)


def case_synflood(n=50000):
    """@n SYNs from random addresses of the subnet (.100-.249, which nobody owns) and random
    ports, as fast as one Python loop on a raw socket sends them.  Prints the window."""
    import array
    rnd = random.Random()
    net = SRV.rsplit(".", 1)[0]
    tmpl = bytearray(bytes(Ether(src=MY_MAC, dst=SRV_MAC) / IP(src=net + ".100", dst=SRV) /
                           TCP(sport=1, dport=PORT, flags="S", seq=0, window=64240,
                               options=[("MSS", 1460)])))

    def csum(b):
        if len(b) % 2:
            b = b + b"\0"
        s = sum(array.array("H", b))
        s = (s & 0xffff) + (s >> 16)
        s = (s & 0xffff) + (s >> 16)
        return ~s & 0xffff

    t0 = time.monotonic()
    dropped = 0
    for i in range(n):
        f = tmpl
        f[29] = 100 + rnd.randrange(150)               # source address, last byte
        struct.pack_into("!H", f, 34, rnd.randrange(1024, 65535))
        struct.pack_into("!I", f, 38, rnd.getrandbits(32))
        f[24:26] = b"\0\0"
        f[24:26] = struct.pack("=H", csum(bytes(f[14:34])))
        f[50:52] = b"\0\0"
        pseudo = bytes(f[26:34]) + struct.pack("!BBH", 0, 6, len(f) - 34)
        f[50:52] = struct.pack("=H", csum(pseudo + bytes(f[34:])))
        try:
            tx.send(f)
        except OSError as e:
            # veth refuses the frame when the server's XDP ring is full: a flood loses
            # frames on the wire too.  Count it and go on.
            if e.errno != errno.ENOBUFS:
                raise
            dropped += 1
    t1 = time.monotonic()
    return "sent=%d dropped=%d start=%.3f end=%.3f rate=%d" % (n, dropped, t0, t1,
                                                               n / (t1 - t0))


CASES = {"synflood": case_synflood, "evicted-ack": case_evicted_ack, "malformed": case_malformed, "garbage": case_garbage, "rfc5961": case_rfc5961,
         "overlap": case_overlap, "window-probe": case_window_probe,
         "zero-window": case_zero_window, "mss1": case_mss1, "isn": case_isn}

for name in sys.argv[6:]:
    try:
        print("case %s: %s" % (name, CASES[name]()), flush=True)
    except Exception as e:  # reported as the case's result: the test shows it
        print("case %s: error %s: %s" % (name, type(e).__name__, e), flush=True)
