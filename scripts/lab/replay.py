#!/usr/bin/env python3
"""Replays a pcap's frames out of a network interface as fast as a raw socket allows (the
lab's flood source: run it inside fg-client on fg-c-in). Prints one line at the end:
`sent N frames in S s (R fps)`.

  replay.py IFACE PCAP [--loops N]
"""
import argparse
import socket
import struct
import sys
import time


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data, 0)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off = 24
    out = []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack_from(endian + "IIII", data, off)
        off += 16
        out.append(data[off:off + incl])
        off += incl
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("iface")
    ap.add_argument("pcap")
    ap.add_argument("--loops", type=int, default=1)
    a = ap.parse_args()
    fr = frames(a.pcap)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    send = s.send
    sent = 0
    t0 = time.monotonic()
    for _ in range(a.loops):
        for f in fr:
            while True:
                try:
                    send(f)
                    break
                except BlockingIOError:
                    time.sleep(0.0005)
                except OSError as e:
                    # ENOBUFS: the qdisc is full; give it a moment rather than losing frames.
                    if e.errno != 105:
                        raise
                    time.sleep(0.0005)
            sent += 1
    dt = time.monotonic() - t0
    print(f"sent {sent} frames in {dt:.2f} s ({sent / dt:.0f} fps)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
