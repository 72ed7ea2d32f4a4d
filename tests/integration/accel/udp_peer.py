"""Kernel UDP peer of udp_scenario.py (client namespace): echoes every datagram to its
sender; "!blast N PORT" sends N 64-byte datagrams to PORT on the sender's address, "!sizes
A,B,... PORT" datagrams of those sizes.  Runs until killed."""

import socket
import sys
import time

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(65536)
    if data.startswith(b"!blast "):
        _, n, port = data.split()
        for i in range(int(n)):
            s.sendto(b"%08d" % i + b"b" * 56, (addr[0], int(port)))
    elif data.startswith(b"!sizes "):
        _, sizes, port = data.split()
        for n in sizes.split(b","):
            s.sendto(b"s" * int(n), (addr[0], int(port)))
            time.sleep(0.01)
    else:
        s.sendto(data, addr)
