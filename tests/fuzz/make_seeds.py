"""Writes the seed corpus of fuzz_rx (tests/fuzz/corpus_rx): one file per shape of input.

    /usr/bin/python3 tests/fuzz/make_seeds.py

Each file is frames [len hi][len lo][mode][frame]; see fuzz_rx.c for the modes.  The
frames use the harness's addresses (peer 10.0.0.2 -> us 10.0.0.1, listener port 80).
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_rx")
US, PEER = bytes([2, 0, 0, 0, 0, 1]), bytes([2, 0, 0, 0, 0, 2])
ME, SRV = bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1])
ACC, ACT, FIX, TMR = 1, 2, 4, 8


def eth(payload, etype=0x0800):
    return US + PEER + struct.pack("!H", etype) + payload


def ip(proto, payload, ident=1, frag=0, ttl=64, opts=b""):
    hl = 20 + len(opts)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(payload), ident, frag,
                       ttl, proto, 0, ME, SRV) + opts + payload


def tcp(sport, dport, seq, ack, flags, data=b"", opts=b"", wnd=65535):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (20 + len(opts)) // 4 << 4,
                       flags, wnd, 0, 0) + opts + data


def frame(mode, f):
    return struct.pack("!HB", len(f), mode) + f


SYN, ACK, PSH, RST, FIN = 2, 16, 8, 4, 1
seeds = {
    "data-echo": [frame(ACC | FIX, eth(ip(6, tcp(0, 0, 0, 0, ACK | PSH, b"hello"))))],
    "rst-in-window": [frame(ACC | FIX, eth(ip(6, tcp(0, 0, 100, 0, RST))))],
    "syn-in-window": [frame(ACC | FIX, eth(ip(6, tcp(0, 0, 10, 0, SYN))))],
    "ack-unsent": [frame(ACC | FIX, eth(ip(6, tcp(0, 0, 0, 100000, ACK | PSH, b"bogus"))))],
    "out-of-order": [frame(ACC | FIX, eth(ip(6, tcp(0, 0, 10, 0, ACK, b"KLMNO")))),
                     frame(ACC | FIX, eth(ip(6, tcp(0, 0, 5, 0, ACK, b"FGHIJ")))),
                     frame(ACC | FIX, eth(ip(6, tcp(0, 0, 0, 0, ACK, b"ABCDEFG"))))],
    "zero-window": [frame(ACT | FIX, eth(ip(6, tcp(0, 0, 0, 0, ACK, wnd=0)))),
                    frame(ACT | FIX | TMR, eth(ip(6, tcp(0, 0, 0, 0, ACK | PSH, b"x", wnd=0))))],
    "fin": [frame(ACC | FIX | TMR, eth(ip(6, tcp(0, 0, 0, 0, ACK | FIN))))],
    "syn-listener": [frame(FIX, eth(ip(6, tcp(4000, 80, 1, 0, SYN,
                                              opts=b"\x02\x04\x00\x01\x01\x03\x03\x07"))))],
    "syn-options-bad": [frame(FIX, eth(ip(6, tcp(4001, 80, 1, 0, SYN,
                                                 opts=b"\x02\x00\x08\x1e" + b"\0" * 4))))],
    "udp": [frame(FIX, eth(ip(17, struct.pack("!HHHH", 5000, 7, 12, 0) + b"udp!")))],
    "fragments": [frame(FIX, eth(ip(6, tcp(4002, 80, 1, 0, SYN)[:16], ident=7, frag=0x2000))),
                  frame(FIX, eth(ip(6, tcp(4002, 80, 1, 0, SYN)[16:], ident=7, frag=2)))],
    "ip-options": [frame(FIX, eth(ip(6, tcp(4003, 80, 1, 0, SYN), opts=b"\x07\x07\x04" + b"\0" * 5)))],
    "arp": [frame(0, eth(struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, PEER, ME,
                                     b"\0" * 6, SRV), 0x0806))],
    "icmp": [frame(FIX, eth(ip(1, b"\x08\x00\xf7\xff\x00\x00\x00\x00")))],
    "truncated": [frame(0, eth(ip(6, tcp(4004, 80, 1, 0, SYN))[:30]))],
}
os.makedirs(OUT, exist_ok=True)
for name, frames in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(b"".join(frames))
print("%d seeds in %s" % (len(seeds), OUT))
