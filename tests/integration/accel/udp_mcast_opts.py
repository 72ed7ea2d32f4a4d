"""Multicast options side by side with the kernel (issue 9): IP_MULTICAST_LOOP and
IP_MULTICAST_ALL.  Three receivers bound to 0.0.0.0:PORT in this process: A joined GROUP,
C did not join (IP_MULTICAST_ALL on, the default), D did not join and turned it off, E
joined before binding (the join takes effect at bind), with IP_MULTICAST_ALL off.  A
sender in this process sends "loop1" with IP_MULTICAST_LOOP on and "loop0" with it off;
the peer (another namespace) sends "remote" when asked.  Prints what each receiver got.

    udp_mcast_opts.py IFADDR GROUP PORT PEER PEERPORT"""

import json
import socket
import struct
import sys
import time

ifaddr, group, port, peer, pport = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
IP_MULTICAST_ALL = 49


def join_first():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(ifaddr)))
    s.bind(("0.0.0.0", port))
    return s


def rx(join=False, mall=True):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if not mall:
        s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
    s.bind(("0.0.0.0", port))
    if join:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(ifaddr)))
    return s


a, c, d, e = rx(join=True), rx(), rx(mall=False), join_first()
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ifaddr))
tx.sendto(b"loop1", (group, port))
tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
tx.sendto(b"loop0", (group, port))
ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ctl.sendto(b"%s %d" % (group.encode(), port), (peer, pport))   # peer: send "remote"
time.sleep(1.0)
out = {}
for name, s in (("A", a), ("C", c), ("D", d), ("E", e)):
    s.setblocking(False)
    got = []
    while True:
        try:
            got.append(s.recv(100).decode())
        except BlockingIOError:
            break
    out[name] = sorted(got)
print(json.dumps(out, sort_keys=True))
