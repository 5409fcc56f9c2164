#!/usr/bin/env python3
"""Load client for bench/vsock: talks HTTP to the stand-in gateway's /echo, which streams the
request body back as it arrives. Not part of ocvm.
  vsock_client.py throughput HOST PORT MIB   -> MiB/s each way (digest checked)
  vsock_client.py pingpong HOST PORT N       -> p50 p99 round trip in microseconds
"""
import hashlib
import os
import socket
import sys
import threading
import time


def open_echo(host, port, length):
    s = socket.create_connection((host, port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(("POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n"
               "Connection: close\r\n\r\n" % length).encode())
    return s


def read_headers(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(1)
        if not chunk:
            raise SystemExit("echo: connection closed before the reply headers")
        buf += chunk
    if not buf.startswith(b"HTTP/1.1 200") and not buf.startswith(b"HTTP/1.0 200"):
        raise SystemExit("echo: " + buf.split(b"\r\n")[0].decode(errors="replace"))


def throughput(host, port, mib):
    block = os.urandom(1 << 20)
    total = mib << 20
    want = hashlib.sha256()
    for _ in range(mib):
        want.update(block)
    s = open_echo(host, port, total)
    got = hashlib.sha256()
    received = [0]

    def reader():
        read_headers(s)
        while received[0] < total:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got.update(chunk)
            received[0] += len(chunk)

    t0 = time.monotonic()
    t = threading.Thread(target=reader)
    t.start()
    for _ in range(mib):
        s.sendall(block)
    t.join()
    dt = time.monotonic() - t0
    if received[0] != total or got.digest() != want.digest():
        raise SystemExit("echo: %d of %d bytes back, digest %s" %
                         (received[0], total, "equal" if got.digest() == want.digest() else "differs"))
    print("%.2f" % (mib / dt))


def pingpong(host, port, n):
    s = open_echo(host, port, n)
    read_headers(s)
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise SystemExit("pingpong: lost the echo")
        times.append((time.monotonic() - t0) * 1e6)
    times.sort()
    print("%.0f %.0f" % (times[n // 2], times[n * 99 // 100]))


if __name__ == "__main__":
    mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    {"throughput": throughput, "pingpong": pingpong}[mode](host, port, n)
