#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Independent replay of an IMA binary measurement list against PCR 10.

Reads the binary format (native endian: pcr u32, template digest, name
length u32, name, data length u32 unless the template is "ima", data),
extends a fresh PCR with each record's template digest (an all-zero
digest is a violation and extends all-ones instead) and compares with the
value given.  Exit 0 on a match.

The "ima" template's data has no length before it (ima_measurements_show()
in ima_fs.c): it is the file's digest without a length (20 bytes: SHA-1,
or zeros for a violation), the name's length (u32) and the name without
its NUL.  With ima_hash=md5 the kernel writes a 16-byte digest there,
which nothing in the record tells apart: such a list is not read here.
"""
import argparse
import hashlib
import struct
import sys

SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
# The "ima" template's file digest (IMA_DIGEST_SIZE).
IMA_DIGEST = 20


def u32(data, off):
    """The native-endian u32 at off, or ValueError if data ends before."""
    if off + 4 > len(data):
        raise ValueError("truncated record")
    return struct.unpack_from("=I", data, off)[0]


def records(data, dsize):
    """Each record of a binary list with dsize-byte template digests: its
    bytes, PCR, template digest, template name and template data."""
    off = 0
    while off < len(data):
        start = off
        pcr = u32(data, off)
        digest = data[off + 4:off + 4 + dsize]
        off += 4 + dsize
        nlen = u32(data, off)
        name = data[off + 4:off + 4 + nlen]
        off += 4 + nlen
        if name == b"ima":
            dlen = IMA_DIGEST + 4 + u32(data, off + IMA_DIGEST)
        else:
            dlen = u32(data, off)
            off += 4
        tdata = data[off:off + dlen]
        off += dlen
        if off > len(data):
            raise ValueError("truncated record")
        yield data[start:off], pcr, digest, name, tdata


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bank", default="sha1", choices=SIZES)
    ap.add_argument("--pcr", help="PCR 10 value (hex) to compare with")
    ap.add_argument("lists", nargs="*", help="binary lists, concatenated in order")
    args = ap.parse_args()
    dsize = SIZES[args.bank]
    data = b"".join(open(p, "rb").read() for p in args.lists)
    pcr = bytes(dsize)
    n = 0
    for _, idx, digest, _, _ in records(data, dsize):
        if idx != 10:
            continue
        if digest == bytes(dsize):
            digest = b"\xff" * dsize
        pcr = hashlib.new(args.bank, pcr + digest).digest()
        n += 1
    want = (args.pcr or "").lower()
    ok = pcr.hex() == want
    print(f"replay {args.bank}: {n} records, replayed {pcr.hex()}, "
          f"tpm {want}: {'MATCH' if ok else 'MISMATCH'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
