"""UDP on a dual-stack AF_INET6 socket (iperf3 -s's way): what the program sees of IPv4
peers and of its own address.

    udp_dualstack.py server PORT N     bind "::", IPV6_RECVPKTINFO and IP_PKTINFO on; for N
                                       datagrams print a JSON line (payload, source,
                                       control messages) and answer to the source; then
                                       connect to the last source, answer one datagram
                                       with recv/send, print "done"
    udp_dualstack.py client HOST PORT N  an unbound AF_INET6 socket sends to ::ffff:HOST
                                       (N + 1 datagrams, each answered); prints one JSON
                                       line: the answers intact, its own name
"""
import json
import socket
import struct
import sys

IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def cmsgs(anc):
    out = []
    for level, typ, data in anc:
        if level == socket.IPPROTO_IPV6 and typ == IPV6_PKTINFO:
            addr, ifindex = data[:16], struct.unpack("I", data[16:20])[0]
            out.append(["IPV6_PKTINFO", socket.inet_ntop(socket.AF_INET6, addr), ifindex > 0])
        elif level == socket.IPPROTO_IP and typ == IP_PKTINFO:
            ifindex, spec, addr = struct.unpack("I4s4s", data[:12])
            out.append(["IP_PKTINFO", socket.inet_ntoa(spec), socket.inet_ntoa(addr), ifindex > 0])
        else:
            out.append([level, typ])
    return sorted(out)


if sys.argv[1] == "server":
    port, n = int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s.bind(("::", port))
    print("ready", json.dumps(list(s.getsockname())), flush=True)
    src = None
    for i in range(n):
        data, anc, flags, src = s.recvmsg(2048, 256)
        print(json.dumps({"data": data.decode(), "src": [src[0], src[2], src[3]],
                          "cmsgs": cmsgs(anc), "flags": flags}), flush=True)
        s.sendto(b"re:" + data, src)
    s.connect(src)
    data = s.recv(2048)
    s.send(b"re:" + data)
    print("done", json.dumps([list(s.getpeername()), s.getsockname()[1]]), flush=True)
else:
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.settimeout(10)
    ok = 0
    for i in range(n + 1):
        msg = b"datagram %d" % i
        s.sendto(msg, ("::ffff:" + host, port))
        data, src = s.recvfrom(2048)
        ok += data == b"re:" + msg and src[:2] == ("::ffff:" + host, port)
    me = s.getsockname()
    print(json.dumps({"ok": ok, "me": [me[0], me[1] > 0]}), flush=True)
