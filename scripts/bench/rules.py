#!/usr/bin/env python3
"""Writes a Suricata rules file for the new-flow benchmark: N filler rules that the
generated traffic (servers in 198.19.255.0/24) never matches, then the given rules file.

usage: rules.py N LAB_RULES > out.rules
"""
import sys

n, lab = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    action = "pass" if i % 2 == 0 else "drop"
    proto = "tcp" if i % 3 else "udp"
    dst = f"198.19.{i // 250}.{i % 250 + 1}"
    print(f'{action} {proto} any any -> {dst} {1024 + i} (msg:"bench filler {i}"; sid:{2000000 + i}; rev:1;)')
with open(lab) as f:
    sys.stdout.write(f.read())
