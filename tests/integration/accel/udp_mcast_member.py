"""Multicast member for test_udp_mcast.py: one socket bound to 0.0.0.0:PORT joins GROUPS
(on the interface of IFADDR);
prints "ready"; receives until each group gave COUNT datagrams, prints "phase1 {counts}";
leaves the first group, prints "left"; receives until an "exit" datagram, prints
"phase2 {counts of what arrived after the leave}"; exits (closing leaves the others).
With a fifth argument "once" it exits after phase1."""

import json
import socket
import struct
import sys

port, count, groups, ifaddr = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
for g in groups:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton(g), socket.inet_aton(ifaddr)))
s.settimeout(30)
print("ready", flush=True)
counts = {g: 0 for g in groups}
while min(counts.values()) < count:
    try:
        data, addr = s.recvfrom(100)
    except socket.timeout:
        sys.exit("timed out with " + json.dumps(counts, sort_keys=True))
    g = data.decode().split()[0]
    counts[g] = counts.get(g, 0) + 1
print("phase1 " + json.dumps(counts, sort_keys=True), flush=True)
if sys.argv[5:] == ["once"]:
    sys.exit(0)
s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton(groups[0]), socket.inet_aton(ifaddr)))
print("left", flush=True)
after = {}
while True:
    data, addr = s.recvfrom(100)
    g, word = data.decode().split()[:2]
    if word == "exit":
        break
    after[g] = after.get(g, 0) + 1
print("phase2 " + json.dumps(after, sort_keys=True), flush=True)
