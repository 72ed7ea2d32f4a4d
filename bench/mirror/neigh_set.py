"""Replaces the neighbour entry IP -> MAC on IFINDEX (NUD_STALE) with one rtnetlink
message, and prints the CLOCK_MONOTONIC time (seconds) just before sending it.  Run inside
the namespace (ip netns exec).  Exit 0 when the kernel acknowledged it.

    neigh_set.py IFNAME IP MAC
"""
import socket
import struct
import sys
import time

RTM_NEWNEIGH, NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE = 28, 1, 4, 0x400, 0x100
NDA_DST, NDA_LLADDR, NUD_STALE, NLMSG_ERROR = 1, 2, 4, 2

ifname, ip, mac = sys.argv[1], socket.inet_aton(sys.argv[2]), bytes.fromhex(sys.argv[3].replace(":", ""))
ndm = struct.pack("=BxxxiHBB", socket.AF_INET, socket.if_nametoindex(ifname), NUD_STALE, 0, 1)
attrs = struct.pack("=HH", 8, NDA_DST) + ip + struct.pack("=HH", 10, NDA_LLADDR) + mac + b"\0\0"
body = ndm + attrs
msg = struct.pack("=IHHII", 16 + len(body), RTM_NEWNEIGH,
                  NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, 1, 0) + body
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.bind((0, 0))
t0 = time.monotonic()
s.send(msg)
reply = s.recv(4096)
err = struct.unpack_from("=i", reply, 16)[0] if struct.unpack_from("=H", reply, 4)[0] == NLMSG_ERROR else 0
print("%.6f" % t0, flush=True)
sys.exit(0 if err == 0 else 1)
