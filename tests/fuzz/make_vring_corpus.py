#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_vring (tests/fuzz/corpus/vring/): well-formed and hostile
rings in the input format fuzz_vring.c documents. Run it again only to change the seeds."""
import os
import struct
import sys

GPA = 0x10000
DESC, AVAIL, USED, BUF = 0x0, 0x200, 0x300, 0x400
MEM = 0x1400


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def hdr(op, length=0, src_cid=3, dst_cid=2, src_port=1234, dst_port=18789, typ=1, flags=0):
    return struct.pack("<QQIIIHHIII", src_cid, dst_cid, src_port, dst_port, length, typ, op,
                       flags, 65536, 0)


def image(qsel, descs, heads, bufs, base=0, avail_idx=None):
    mem = bytearray(MEM)
    for i, d in enumerate(descs):
        mem[DESC + 16 * i:DESC + 16 * i + 16] = d
    idx = (base + len(heads)) & 0xffff if avail_idx is None else avail_idx
    struct.pack_into("<HH", mem, AVAIL, 0, idx)
    for i, h in enumerate(heads):
        struct.pack_into("<H", mem, AVAIL + 4 + 2 * ((base + i) % 8), h)
    for off, data in bufs:
        mem[off:off + len(data)] = data
    return bytes([qsel]) + struct.pack("<H", base) + bytes(mem)


NEXT, WRITE, INDIRECT = 1, 2, 4
payload = b"hello, guest" * 4
seeds = {
    "request": image(2, [desc(GPA + BUF, 44)], [0], [(BUF, hdr(1))]),
    "rw_two_desc": image(2, [desc(GPA + BUF, 44, NEXT, 1), desc(GPA + BUF + 64, len(payload))],
                         [0], [(BUF, hdr(5, len(payload))), (BUF + 64, payload)]),
    "rw_one_desc": image(2, [desc(GPA + BUF, 44 + len(payload))], [0],
                         [(BUF, hdr(5, len(payload)) + payload)]),
    "indirect": image(0x82, [desc(GPA + BUF + 0x800, 32, INDIRECT)], [0],
                      [(BUF + 0x800, desc(GPA + BUF, 44, NEXT, 1) +
                        desc(GPA + BUF + 64, len(payload))),
                       (BUF, hdr(5, len(payload))), (BUF + 64, payload)]),
    "rx_buffers": image(2, [desc(GPA + BUF, 44, WRITE | NEXT, 1), desc(GPA + BUF + 64, 256, WRITE),
                            desc(GPA + BUF + 512, 300, WRITE)], [0, 2], []),
    "loop": image(2, [desc(GPA + BUF, 8, NEXT, 1), desc(GPA + BUF, 8, NEXT, 0)], [0], []),
    "out_of_bounds": image(2, [desc(GPA + MEM - 8, 44)], [0], []),
    "overflow": image(2, [desc(0xfffffffffffffff0, 0x20)], [0], []),
    "nested_indirect": image(0x82, [desc(GPA + BUF, 16, INDIRECT)], [0],
                             [(BUF, desc(GPA + BUF, 16, INDIRECT))]),
    "len_too_big": image(2, [desc(GPA + BUF, 44)], [0], [(BUF, hdr(5, 1000))]),
    "bad_cid": image(2, [desc(GPA + BUF, 44)], [0], [(BUF, hdr(1, src_cid=7))]),
    "avail_jump": image(2, [], [], [], avail_idx=200),
    "wrap": image(2, [desc(GPA + BUF, 44)] * 4, [0, 1, 2, 3], [(BUF, hdr(6))], base=0xfffe),
}

out = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "corpus", "vring")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {out}")
