#!/usr/bin/env python3
"""Host side of the hybrid vsock protocol, for tests of the vsock backend.

  hybrid_client.py get UDS PORT URLPATH   CONNECT PORT, then GET URLPATH; prints the response
  hybrid_client.py echo UDS PORT BYTES    CONNECT PORT, then POST /echo of BYTES random bytes
                                          (reading while sending); prints "match N MiB/s"
  hybrid_client.py listen PATH SECONDS    listens on PATH (UDS_PORT: a guest->host port), prints
                                          what each client sends until one sends READY=1 (the
                                          guest's sd_notify messages: OCVM_STAGE=... come first)
Exit status 1 on any failure, with one line on stderr."""
import hashlib
import os
import selectors
import socket
import sys
import time


def die(msg):
    print("hybrid_client: " + msg, file=sys.stderr)
    sys.exit(1)


def connect(uds, port):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(uds)
    s.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            die(f"CONNECT {port}: closed before OK (got {line!r})")
        line += b
        if len(line) > 32:
            die(f"CONNECT {port}: overlong answer {line!r}")
    if not line.startswith(b"OK "):
        die(f"CONNECT {port}: answer {line!r}")
    return s


def read_all(s):
    out = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            return bytes(out)
        out += b


def get(uds, port, path):
    s = connect(uds, port)
    s.sendall(b"GET %s HTTP/1.0\r\nHost: guest\r\n\r\n" % path.encode())
    sys.stdout.write(read_all(s).decode(errors="replace") + "\n")


def echo(uds, port, size):
    s = connect(uds, port)
    body = os.urandom(size)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: guest\r\nContent-Length: %d\r\n\r\n" % size)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent, resp, t0 = 0, bytearray(), time.time()
    while True:
        ready = sel.select(30)
        if not ready:
            die(f"echo stalled: sent {sent}, received {len(resp)}")
        for _, mask in ready:
            if mask & selectors.EVENT_WRITE and sent < size:
                try:
                    sent += s.send(body[sent:sent + 65536])
                except BlockingIOError:
                    pass
                if sent == size:
                    sel.modify(s, selectors.EVENT_READ)
            if mask & selectors.EVENT_READ:
                b = s.recv(262144)
                if b:
                    resp += b
                    continue
                head, _, got = bytes(resp).partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    die(f"echo: {head[:80]!r}")
                if hashlib.sha256(got).digest() != hashlib.sha256(body).digest():
                    die(f"echo: {len(got)} bytes back, digest differs")
                rate = 2 * size / (time.time() - t0) / 1048576
                print(f"match {rate:.1f} MiB/s")
                return


def listen(path, seconds):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    deadline = time.monotonic() + seconds
    while True:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            c, _ = s.accept()
        except socket.timeout:
            die(f"nobody sent READY=1 to {path} in {seconds} s")
        c.settimeout(max(0.01, deadline - time.monotonic()))
        msg = read_all(c).decode(errors="replace")
        c.close()
        sys.stdout.write(msg if msg.endswith("\n") else msg + "\n")
        sys.stdout.flush()
        if "READY=1" in msg.split("\n"):
            return


def main():
    a = sys.argv[1:]
    if len(a) == 4 and a[0] == "get":
        get(a[1], int(a[2]), a[3])
    elif len(a) == 4 and a[0] == "echo":
        echo(a[1], int(a[2]), int(a[3]))
    elif len(a) == 3 and a[0] == "listen":
        listen(a[1], float(a[2]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


main()
