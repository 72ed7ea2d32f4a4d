"""Datagrams of many sizes, both ends (issue 9, test 6):

    udp_sizes.py sink ADDR PORT N [GROUP]   receive N datagrams (joining GROUP on the
                                            interface of ADDR if given); print "ready" first,
                                            then one JSON line [[length, intact], ...]
    udp_sizes.py send DEST PORT IFADDR SIZES  send one datagram per size (comma list) to
                                            DEST:PORT from an unbound socket (multicast out
                                            of the interface of IFADDR), paced

A datagram's content is its size's pattern: byte i is (i * 7 + size) % 251."""

import json
import socket
import struct
import sys
import time


def pattern(n):
    return bytes((i * 7 + n) % 251 for i in range(n))


if sys.argv[1] == "sink":
    addr, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    if len(sys.argv) > 5:
        g = sys.argv[5]
        s.bind((g, port))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     struct.pack("4s4s", socket.inet_aton(g), socket.inet_aton(addr)))
    else:
        s.bind((addr, port))
    s.settimeout(20)
    print("ready", flush=True)
    got = []
    for _ in range(n):
        d = s.recv(70000)
        got.append([len(d), d == pattern(len(d))])
    print(json.dumps(got), flush=True)
else:
    dest, port, ifaddr, sizes = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ifaddr))
    for n in sizes.split(","):
        s.sendto(pattern(int(n)), (dest, port))
        time.sleep(0.02)
    print("sent", flush=True)
