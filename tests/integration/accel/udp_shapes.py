"""Datagrams the sender shapes beyond one call: what the receiver gets must not depend on
whether the sender is accelerated.

    udp_shapes.py recv PORT          a kernel receiver: prints one JSON line per datagram
                                     (length, head, TTL) until "end"
    udp_shapes.py send HOST PORT N   a connected sender: MSG_MORE pieces, UDP_CORK, a
                                     UDP_SEGMENT batch, a TTL and an IP_PKTINFO in control
                                     messages, then N plain datagrams and "end"
    udp_shapes.py burst HOST PORT N  N datagrams and "end" at once, then exit
"""
import json
import socket
import struct
import sys

UDP_CORK, UDP_SEGMENT = 1, 103   # <netinet/udp.h>
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)

if sys.argv[1] == "recv":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)   # SO_RCVBUFFORCE: it never drops a burst
    s.bind(("0.0.0.0", int(sys.argv[2])))
    print("ready", flush=True)
    while True:
        data, anc, _, _ = s.recvmsg(65536, 256)
        ttl = [struct.unpack("i", d[:4])[0] for l, t, d in anc if t == socket.IP_TTL]
        print(json.dumps([len(data), data[:12].decode(), ttl]), flush=True)
        if data == b"end":
            break
elif sys.argv[1] == "burst":
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        s.sendto(b"burst %d" % i, (host, port))
    s.sendto(b"end", (host, port))
else:
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    me = s.getsockname()[0]
    s.send(b"ab", socket.MSG_MORE)
    s.send(b"cd", socket.MSG_MORE)
    s.send(b"ef-more")
    s.setsockopt(socket.IPPROTO_UDP, UDP_CORK, 1)
    s.send(b"gh")
    s.send(b"ij-cork")
    s.setsockopt(socket.IPPROTO_UDP, UDP_CORK, 0)
    s.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, 1000)
    s.send(b"s" * 3500)
    s.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, 0)
    s.sendmsg([b"ttl-seven"], [(socket.IPPROTO_IP, socket.IP_TTL, struct.pack("i", 7))])
    pi = struct.pack("I4s4s", 0, socket.inet_aton(me), b"\0\0\0\0")
    s.sendmsg([b"pktinfo"], [(socket.IPPROTO_IP, IP_PKTINFO, pi)])
    s.send(b"plain")
    for i in range(n):
        s.send(b"bulk %d" % i)
    s.send(b"end")
