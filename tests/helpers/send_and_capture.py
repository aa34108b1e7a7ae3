#!/usr/bin/env python3
"""Sends frames out of network interfaces and captures what arrives on others, with
AF_PACKET raw sockets, for the integration tests (tests/reliability_mgmt_death.rs).

  send_and_capture.py OUT_DIR GAP_MS QUIET_MS CAPTURE_IFACES SEND_IFACE PCAP [SEND_IFACE PCAP ...]

CAPTURE_IFACES is a comma-separated list. Capture sockets open before anything is sent, so
nothing is missed. Each PCAP goes out of the interface named before it, in order, with
GAP_MS between files (so that the appliance has seen a SYN before its SYN-ACK comes from
the other side). After the last file, capture goes on until nothing arrived for QUIET_MS
(at most 10 s more). Frames an interface received are written to OUT_DIR/IFACE.pcap in
arrival order; frames sent out of a capture interface (PACKET_OUTGOING) are not captured.
Prints {"sent": {iface: n}, "captured": {iface: n}} as JSON. Needs root (CAP_NET_RAW).
"""
import json
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

# The pcap reader shared with the plain sender (this script's directory is on sys.path).
from send_frames import frames  # noqa: E402


def write_pcap(path, captured):
    """Writes the capture to a temporary file renamed into place: the test reading it
    never sees a partial file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        # Classic pcap, microseconds, little-endian, Ethernet.
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, frame in captured:
            sec = int(ts)
            f.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)))
            f.write(frame)
    os.replace(tmp, path)


def main(args):
    if len(args) < 6 or len(args) % 2:
        sys.exit(__doc__)
    out_dir, gap, quiet, capture_ifaces = args[0], int(args[1]), int(args[2]), args[3]
    sends = list(zip(args[4::2], args[5::2]))
    captures = {}
    for iface in capture_ifaces.split(","):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind((iface, ETH_P_ALL))
        s.setblocking(False)
        captures[s] = (iface, [])
    last_rx = time.monotonic()

    def drain(until):
        nonlocal last_rx
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select(list(captures), [], [], left)
            for s in ready:
                while True:
                    try:
                        frame, addr = s.recvfrom(65535)
                    except BlockingIOError:
                        break
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    captures[s][1].append((time.time(), frame))
                    last_rx = time.monotonic()

    sent = {}
    for k, (iface, path) in enumerate(sends):
        if k:
            drain(time.monotonic() + gap / 1000)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((iface, 0))
        n = 0
        for frame in frames(path):
            s.send(frame)
            n += 1
        s.close()
        sent[iface] = sent.get(iface, 0) + n
    deadline = time.monotonic() + 10
    started_quiet = time.monotonic()
    while time.monotonic() < deadline:
        quiet_until = max(last_rx, started_quiet) + quiet / 1000
        if time.monotonic() >= quiet_until:
            break
        drain(min(quiet_until, deadline))
    counts = {}
    for s, (iface, captured) in captures.items():
        s.close()
        write_pcap(os.path.join(out_dir, iface + ".pcap"), captured)
        counts[iface] = len(captured)
    print(json.dumps({"sent": sent, "captured": counts}))


if __name__ == "__main__":
    main(sys.argv[1:])
