#!/usr/bin/env python3
"""Long-lived TCP sessions for the lab: a line echo server and a client that keeps a
connection busy and reports precisely how it ended (reset, closed, timeout).

  echo.py server PORT [PORT ...]
  echo.py client HOST PORT [--interval S] [--status FILE]   # runs until the connection ends
  echo.py probe HOST PORT [--timeout S]                      # exit 0 if a new connection echoes
"""
import os
import socket
import sys
import threading
import time


def serve_conn(conn):
    with conn:
        f = conn.makefile("rb")
        try:
            for line in f:
                conn.sendall(line)
        except OSError:
            pass


def server(ports):
    socks = []
    for p in ports:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", p))
        s.listen(64)
        socks.append(s)

    def accept_loop(s):
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve_conn, args=(c,), daemon=True).start()

    for s in socks:
        threading.Thread(target=accept_loop, args=(s,), daemon=True).start()
    while True:
        time.sleep(3600)


def status(path, text):
    """Replaces the status file atomically (temporary file, then rename): a reader never
    sees it empty or half-written."""
    if path:
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    print(text, flush=True)


def connect(host, port, deadline_s=30.0):
    """Connects, retrying while the server (started just before us) is not yet listening."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return socket.create_connection((host, port), timeout=5)
        except ConnectionRefusedError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def client(host, port, interval, path):
    try:
        s = connect(host, port)
    except OSError as e:
        status(path, f"connect failed: {e}")
        return 8
    s.settimeout(5)
    f = s.makefile("rb")
    n = 0
    try:
        while True:
            msg = f"msg {n}\n".encode()
            s.sendall(msg)
            line = f.readline()
            if not line:
                status(path, f"closed after {n} echoes")
                return 4
            if line != msg:
                status(path, f"bad echo after {n}")
                return 5
            n += 1
            status(path, f"ok {n}")
            time.sleep(interval)
    except ConnectionResetError:
        status(path, f"reset after {n} echoes: connection reset by peer")
        return 3
    except (socket.timeout, TimeoutError):
        status(path, f"timeout after {n} echoes")
        return 6
    except OSError as e:
        status(path, f"error after {n} echoes: {e}")
        return 7


def probe(host, port, timeout):
    try:
        s = socket.create_connection((host, port), timeout=timeout)
        s.settimeout(timeout)
        s.sendall(b"probe\n")
        ok = s.recv(16) == b"probe\n"
        s.close()
        print("connected" if ok else "no echo")
        return 0 if ok else 1
    except (OSError, socket.timeout) as e:
        print(f"refused: {e}")
        return 1


def opt(args, name, default):
    if name in args:
        return args[args.index(name) + 1]
    return default


if __name__ == "__main__":
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "server":
        server([int(p) for p in a[1:]])
    elif a[0] == "client":
        sys.exit(client(a[1], int(a[2]), float(opt(a, "--interval", "0.2")), opt(a, "--status", None)))
    elif a[0] == "probe":
        sys.exit(probe(a[1], int(a[2]), float(opt(a, "--timeout", "3"))))
    else:
        sys.exit(__doc__)
