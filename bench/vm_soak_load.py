#!/usr/bin/env python3
"""Mixed load on the stand-in gateway through `ocvm up`'s host listener, for bench/soak-vm.

   vm_soak_load.py PORT SECONDS [SHORT_THREADS] [LONG_THREADS] [LONG_MIB]

Short: a new connection per GET /health. Long: POST /echo of LONG_MIB MiB, read while sent,
checked byte for byte (the digest of what came back). Half-close: GET /health, then shut the
sending side before reading the reply. Errors (refused, reset, cut, wrong reply) are counted, not
fatal: faults are injected meanwhile. Prints one JSON object at the end."""
import hashlib, json, os, socket, sys, threading, time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
n_short = int(sys.argv[3]) if len(sys.argv) > 3 else 4
n_long = int(sys.argv[4]) if len(sys.argv) > 4 else 2
long_mib = int(sys.argv[5]) if len(sys.argv) > 5 else 16
end = time.monotonic() + seconds
lock = threading.Lock()
counts = {"short_ok": 0, "short_err": 0, "long_ok": 0, "long_err": 0, "long_bytes": 0,
          "halfclose_ok": 0, "halfclose_err": 0}
errors = {}
error_times = []  # wall-clock time of each error, to set against the faults' times


def count(key, err=None):
    with lock:
        counts[key] += 1
        if err:
            errors[err] = errors.get(err, 0) + 1
            error_times.append(time.time())


def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)
    return s


def read_all(s):
    parts = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(parts)
        parts.append(b)


def ok_health(reply):
    return reply.startswith(b"HTTP/1.1 200") and b'"ok":true' in reply


def short():
    while time.monotonic() < end:
        try:
            with connect() as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if ok_health(read_all(s)):
                    count("short_ok")
                else:
                    count("short_err", "short: not 200")
        except OSError as e:
            count("short_err", "short: " + (e.strerror or type(e).__name__))
            time.sleep(0.2)


def halfclose():
    while time.monotonic() < end:
        try:
            with connect() as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                s.shutdown(socket.SHUT_WR)
                if ok_health(read_all(s)):
                    count("halfclose_ok")
                else:
                    count("halfclose_err", "half-close: not 200")
        except OSError as e:
            count("halfclose_err", "half-close: " + (e.strerror or type(e).__name__))
            time.sleep(0.2)
        time.sleep(0.05)


def long_one(size):
    chunk = os.urandom(65536)
    sent_digest, got_digest = hashlib.sha256(), hashlib.sha256()
    with connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        err = []

        def sender():
            try:
                left = size
                while left > 0:
                    piece = chunk[: min(left, len(chunk))]
                    s.sendall(piece)
                    sent_digest.update(piece)
                    left -= len(piece)
            except OSError as e:
                err.append(e)

        t = threading.Thread(target=sender)
        t.start()
        head, body = b"", 0
        while b"\r\n\r\n" not in head:
            b = s.recv(65536)
            if not b:
                break
            head += b
        head, _, rest = head.partition(b"\r\n\r\n")
        got_digest.update(rest)
        body = len(rest)
        while body < size:
            b = s.recv(262144)
            if not b:
                break
            got_digest.update(b)
            body += len(b)
        t.join()
        if err:
            raise err[0]
        if not head.startswith(b"HTTP/1.1 200") or body != size:
            raise OSError(0, "echo cut at %d of %d bytes" % (body, size))
        if sent_digest.digest() != got_digest.digest():
            raise OSError(0, "echo differs")
        return size


def long():
    while time.monotonic() < end:
        try:
            n = long_one(long_mib << 20)
            with lock:
                counts["long_bytes"] += 2 * n
            count("long_ok")
        except OSError as e:
            count("long_err", "long: " + (e.strerror or type(e).__name__))
            time.sleep(0.2)


threads = [threading.Thread(target=f) for f in [short] * n_short + [long] * n_long + [halfclose]]
for t in threads:
    t.start()
for t in threads:
    t.join()
counts["errors"] = errors
counts["error_times"] = error_times
print(json.dumps(counts))
