#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_vhost_user (tests/fuzz/corpus/vhost_user/): QEMU's handshake
for vhost-user-vsock and a few hostile sessions, in the record format fuzz_vhost_user.c
documents. Run it again only to change the seeds."""
import os
import struct
import sys

UVA = 0x7f0000000000
MEM = 1 << 20
V1, NEED_REPLY = 0x1, 0x8
POKE = 0xF00D
EVENTFDS = 0x10


def rec(req, payload=b"", fds=0, flags=V1):
    return struct.pack("<BIIIH", fds, req, flags, 0, len(payload)) + payload


def u64(v):
    return struct.pack("<Q", v)


def state(i, n):
    return struct.pack("<II", i, n)


def poke(off, data):
    return rec(POKE, struct.pack("<I", off) + data)


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def ring(q, qsize=16):
    base = 0x1000 + 0x4000 * q
    return [
        rec(8, state(q, qsize), flags=V1 | NEED_REPLY),
        rec(10, state(q, 0)),
        rec(9, struct.pack("<IIQQQQ", q, 0, UVA + base, UVA + base + 0x2000, UVA + base + 0x1000, 0)),
        rec(12, u64(q), fds=EVENTFDS | 1),
        rec(13, u64(q), fds=EVENTFDS | 1),
        rec(18, state(q, 1)),
    ]


handshake = [
    rec(1), rec(15), rec(16, u64((1 << 3) | (1 << 9))), rec(3),
    rec(24, struct.pack("<III", 0, 8, 0) + bytes(8)),
    rec(2, u64((1 << 32) | (1 << 30))),
    rec(5, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, MEM, UVA, 0), fds=1,
        flags=V1 | NEED_REPLY),
]
# a tx chain (queue 1) and an rx buffer (queue 0) waiting when the rings start
chains = [
    poke(0x1000 + 0x4000, desc(0x80000, 44, 1, 1) + desc(0x80100, 16)),
    poke(0x1000 + 0x4000 + 0x1000, struct.pack("<HHH", 0, 1, 0)),
    poke(0x1000, desc(0x90000, 4096, 2)),
    poke(0x2000, struct.pack("<HHH", 0, 1, 0)),
    poke(0x1000 + 0x4000 * 2, desc(0x90000, 16, 1, 0)),  # a loop, for ring 2
]
stop = [rec(11, state(0, 0)), rec(11, state(1, 0))]
seeds = {
    "qemu_session": b"".join(handshake + chains + ring(0) + ring(1) + stop),
    "reset_device": b"".join(handshake + ring(0) + ring(1) + [rec(34)] + ring(0)),
    "oversized": rec(5, bytes(300), fds=1),
    "too_many_fds": rec(5, struct.pack("<II", 8, 0) + bytes(256), fds=12),
    "mem_beyond_file": b"".join(handshake[:4] + [rec(5, struct.pack("<II", 1, 0) +
                                                 struct.pack("<QQQQ", 0, 2 * MEM, UVA, 0),
                                                 fds=1, flags=V1 | NEED_REPLY)]),
    "unknown_request": b"".join(handshake[:4] + [rec(99, flags=V1 | NEED_REPLY), rec(1234)]),
    "bad_ring_addr": b"".join(handshake + [rec(8, state(0, 16)),
                                           rec(9, struct.pack("<IIQQQQ", 0, 0, UVA + MEM - 8,
                                                              UVA, UVA, 0), flags=V1 | NEED_REPLY)]),
    "config_lies": b"".join(handshake[:4] + [rec(24, struct.pack("<III", 4, 300, 0))]),
}

out = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "corpus", "vhost_user")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {out}")
