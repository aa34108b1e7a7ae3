#!/usr/bin/env python3
"""One large UDP datagram across the lab (the kernel fragments it on the way out).

  udp_datagram.py recv PORT --status FILE [--timeout S]   # writes "ready", then "got N"
  udp_datagram.py send HOST PORT SIZE                     # one datagram of SIZE bytes

The status file is replaced atomically (temporary file, then rename): the test reads it
while this process runs.
"""
import os
import socket
import sys


def write_status(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def recv(port, status, timeout):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.settimeout(timeout)
    write_status(status, "ready")
    try:
        data, peer = s.recvfrom(65535)
    except socket.timeout:
        write_status(status, "timeout")
        return 1
    write_status(status, f"got {len(data)} from {peer[0]}")
    return 0


def send(host, port, size):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    # The kernel fragments it (IP_PMTUDISC_DONT: no DF, as for any large UDP datagram).
    if family == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
    s.sendto(bytes(i % 251 for i in range(size)), (host, port))
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "recv":
        status = argv[argv.index("--status") + 1]
        timeout = float(argv[argv.index("--timeout") + 1]) if "--timeout" in argv else 60.0
        return recv(int(argv[1]), status, timeout)
    if len(argv) == 4 and argv[0] == "send":
        return send(argv[1], int(argv[2]), int(argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
