#!/usr/bin/env python3
"""Sends the frames of classic pcap files out of network interfaces with AF_PACKET raw
sockets, in file order, for the integration tests (tests/multiworker_e2e.rs).

  send_frames.py IFACE PCAP [IFACE PCAP ...]

Each file goes out of the interface named before it, one file after the other. Prints the
number of frames sent per interface as JSON. Needs root (CAP_NET_RAW).
"""
import json
import socket
import struct
import sys


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        sys.exit(f"{path}: not a classic pcap file")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off : off + 16])
        off += 16
        yield data[off : off + incl]
        off += incl


def main(args):
    if len(args) < 2 or len(args) % 2:
        sys.exit(__doc__)
    sent = {}
    for iface, path in zip(args[::2], args[1::2]):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((iface, 0))
        n = 0
        for frame in frames(path):
            s.send(frame)
            n += 1
        s.close()
        sent[iface] = sent.get(iface, 0) + n
    print(json.dumps(sent))


if __name__ == "__main__":
    main(sys.argv[1:])
