"""Prints the CLOCK_MONOTONIC time (seconds) at which the first IPv4 frame addressed to MAC
arrives on IFACE, then exits; prints "ready" on stderr once listening.  Run inside the
namespace (ip netns exec).  A veth hands its peer every frame, whatever the destination
MAC, so frames to a MAC the interface does not have are seen too.

    first_frame.py IFACE MAC TIMEOUT_S
"""
import socket
import sys
import time

iface, mac, timeout = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((iface, 0))
s.settimeout(0.2)
print("ready", file=sys.stderr, flush=True)
end = time.monotonic() + timeout
while time.monotonic() < end:
    try:
        f = s.recv(64)
    except socket.timeout:
        continue
    if f[:6] == mac:
        print("%.6f" % time.monotonic(), flush=True)
        sys.exit(0)
sys.exit(1)
