#!/usr/bin/env python3
"""Spoofed TCP segments for the lab's attack tests (scripts/tests/lab-tcp-attacks.sh), with
AF_PACKET raw sockets only (no scapy). IPv4.

  tcp_inject.py session IFACE PORT [--spread N]
      Waits (up to 10 s) for a segment of a live session leaving IFACE whose source or
      destination port is PORT, learns its addresses, MACs, next sequence number and ACK,
      then sends, out of IFACE and as that same sender, segments the receiver would not
      accept: N RSTs spread over the whole sequence space (none exact), one RST one byte
      past the exact sequence number (in window, inexact), FINs with the sequence or the
      ACK number 2^31 away, and data 2^31 away. Prints what it learnt and sent as JSON.

  tcp_inject.py flood IFACE SRC DST SPORT DPORT [--count N] [--flags A]
      Sends N segments of one flow (random sequence and ACK numbers), as a blind spoofer
      would. Prints {"sent": N}.

Needs root (CAP_NET_RAW).
"""
import argparse
import json
import random
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(src_mac, dst_mac, src, dst, sport, dport, seq, ack, flags, window=502, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, window, 0, 0) + payload
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.randrange(65536), 0x4000,
                     64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    f = dst_mac + src_mac + struct.pack("!H", ETH_P_IP) + ip + tcp
    return f + b"\0" * max(0, 60 - len(f))


def learn(iface, port, timeout=10.0):
    """The next outgoing IPv4 TCP segment on IFACE with source or destination port PORT."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, ETH_P_ALL))
    s.settimeout(0.5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                f, addr = s.recvfrom(65535)
            except socket.timeout:
                continue
            if addr[2] != PACKET_OUTGOING or len(f) < 54 or f[12:14] != b"\x08\x00":
                continue
            ihl = (f[14] & 0x0F) * 4
            if f[23] != 6:
                continue
            total = struct.unpack("!H", f[16:18])[0]
            t = 14 + ihl
            sport, dport, seq, ack, off, flags, window = struct.unpack("!HHIIBBH", f[t:t + 16])
            if port not in (sport, dport) or not flags & FLAGS["A"] or flags & (FLAGS["R"] | FLAGS["S"]):
                continue
            plen = total - ihl - (off >> 4) * 4
            return {
                "dst_mac": f[0:6], "src_mac": f[6:12], "src": f[26:30], "dst": f[30:34],
                "sport": sport, "dport": dport, "seq": seq, "ack": ack, "window": window,
                "next_seq": (seq + plen + (flags & 1)) & 0xFFFFFFFF,
            }
    finally:
        s.close()
    sys.exit(f"no segment with port {port} left {iface} within {timeout} s")


def session(a):
    k = learn(a.iface, a.port)
    out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    out.bind((a.iface, 0))
    nxt, ack = k["next_seq"], k["ack"]
    base = (k["src_mac"], k["dst_mac"], k["src"], k["dst"], k["sport"], k["dport"])
    far = 1 << 31
    sent = {"rst_spread": 0, "rst_near": 0, "fin_far": 0, "fin_ack_far": 0, "data_far": 0}
    step = (1 << 32) // a.spread
    for i in range(a.spread):
        seq = (nxt + 4096 + i * step) & 0xFFFFFFFF
        out.send(frame(*base, seq, 0, FLAGS["R"]))
        sent["rst_spread"] += 1
    out.send(frame(*base, nxt + 1, ack, FLAGS["R"] | FLAGS["A"]))
    sent["rst_near"] += 1
    for _ in range(8):
        out.send(frame(*base, nxt + far, ack, FLAGS["F"] | FLAGS["A"]))
        sent["fin_far"] += 1
        out.send(frame(*base, nxt, ack + far, FLAGS["F"] | FLAGS["A"]))
        sent["fin_ack_far"] += 1
        out.send(frame(*base, nxt + far, ack, FLAGS["A"] | FLAGS["P"], payload=b"spoofed\n"))
        sent["data_far"] += 1
    out.close()
    learned = {"sport": k["sport"], "dport": k["dport"], "next_seq": nxt, "ack": ack}
    print(json.dumps({"learned": learned, "sent": sent}))


def flood(a):
    src, dst = socket.inet_aton(a.src), socket.inet_aton(a.dst)
    flags = sum(FLAGS[c] for c in a.flags)
    out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    out.bind((a.iface, 0))
    # Locally administered MACs: no stack on the path takes these frames for itself.
    macs = (b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02")
    for _ in range(a.count):
        out.send(frame(*macs, src, dst, a.sport, a.dport, random.getrandbits(32),
                       random.getrandbits(32), flags))
    out.close()
    print(json.dumps({"sent": a.count}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("session")
    s.add_argument("iface")
    s.add_argument("port", type=int)
    s.add_argument("--spread", type=int, default=1024)
    f = sub.add_parser("flood")
    f.add_argument("iface")
    f.add_argument("src")
    f.add_argument("dst")
    f.add_argument("sport", type=int)
    f.add_argument("dport", type=int)
    f.add_argument("--count", type=int, default=100)
    f.add_argument("--flags", default="A")
    a = ap.parse_args()
    session(a) if a.cmd == "session" else flood(a)


if __name__ == "__main__":
    main()
