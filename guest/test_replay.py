#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""replay.py on synthetic binary lists of the ima, ima-ng and ima-sig
templates, laid out as ima_measurements_show() in ima_fs.c writes them, and
with template digests computed as ima_calc_field_array_hash() does.

  python3 guest/test_replay.py   (scripts/selftest runs it)
"""
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import unittest

GUESTDIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, GUESTDIR)
import replay  # noqa: E402


def u32(n):
    return struct.pack("=I", n)


def ima_record(bank, path, file_digest):
    """An "ima" template record: its data is the 20-byte file digest, the
    name's length and the name; the template digest covers the digest and
    the name padded to IMA_EVENT_NAME_LEN_MAX + 1 bytes, with no lengths."""
    name = path.encode()
    tdata = file_digest + u32(len(name)) + name
    tdigest = hashlib.new(bank, file_digest + name.ljust(256, b"\0")).digest()
    return u32(10) + tdigest + u32(3) + b"ima" + tdata, tdata


def ng_record(bank, template, fields):
    """A record of a template whose fields each have a u32 length (ima-ng,
    ima-sig): the data length, then each field's length and bytes; the
    template digest covers the fields with their lengths."""
    tdata = b"".join(u32(len(f)) + f for f in fields)
    tdigest = hashlib.new(bank, tdata).digest()
    name = template.encode()
    return u32(10) + tdigest + u32(len(name)) + name + u32(len(tdata)) + tdata, tdata


def violation(bank):
    """An ima-ng violation: the template digest is all zeros."""
    fields = [b"sha256:\0" + bytes(32), b"/tmp/violated\0"]
    tdata = b"".join(u32(len(f)) + f for f in fields)
    dsize = replay.SIZES[bank]
    return u32(10) + bytes(dsize) + u32(6) + b"ima-ng" + u32(len(tdata)) + tdata, tdata


def sample(bank):
    """A list with a record of each template and a violation: its records
    as (raw bytes, template name, template data), in order."""
    file1 = hashlib.sha1(b"one").digest()
    file2 = hashlib.sha256(b"two").digest()
    sig = bytes([3, 2, 4, 0, 0, 0, 0, 0, 8]) + b"signature"
    return [
        (*ima_record(bank, "boot_aggregate", bytes(20)), "ima"),
        (*ima_record(bank, "/usr/bin/a" + "x" * 200, file1), "ima"),
        (*ng_record(bank, "ima-ng", [b"sha256:\0" + file2, b"/etc/two\0"]), "ima-ng"),
        (*ng_record(bank, "ima-sig", [b"sha256:\0" + file2, b"/etc/signed\0", sig]), "ima-sig"),
        (*violation(bank), "ima-ng"),
        (*ima_record(bank, "/etc/last", file1), "ima"),
    ]


def expected_pcr(bank, raws):
    """PCR 10 after extending each record's template digest (all-ones for
    a violation)."""
    dsize = replay.SIZES[bank]
    pcr = bytes(dsize)
    for raw in raws:
        digest = raw[4:4 + dsize]
        if digest == bytes(dsize):
            digest = b"\xff" * dsize
        pcr = hashlib.new(bank, pcr + digest).digest()
    return pcr.hex()


class Templates(unittest.TestCase):
    def check_bank(self, bank):
        recs = sample(bank)
        data = b"".join(raw for raw, _, _ in recs)
        got = list(replay.records(data, replay.SIZES[bank]))
        self.assertEqual(len(got), len(recs))
        for (raw, tdata, name), (graw, pcr, _, gname, gtdata) in zip(recs, got):
            self.assertEqual(graw, raw)
            self.assertEqual(gname, name.encode())
            self.assertEqual(gtdata, tdata)
            self.assertEqual(pcr, 10)

    def test_sha1(self):
        self.check_bank("sha1")

    def test_sha256(self):
        self.check_bank("sha256")

    def test_truncated(self):
        data = b"".join(raw for raw, _, _ in sample("sha1"))
        for cut in (1, 10, 30):
            with self.assertRaises(ValueError):
                list(replay.records(data[:-cut], 20))

    def test_replay_command(self):
        """replay.py as the guest runs it: MATCH and exit 0 on the right
        PCR, MISMATCH and exit 1 on another."""
        for bank in ("sha1", "sha256"):
            raws = [raw for raw, _, _ in sample(bank)]
            with tempfile.NamedTemporaryFile() as f:
                f.write(b"".join(raws))
                f.flush()
                for pcr, rc, word in ((expected_pcr(bank, raws), 0, "MATCH"),
                                      ("00" * replay.SIZES[bank], 1, "MISMATCH")):
                    out = subprocess.run(
                        [sys.executable, os.path.join(GUESTDIR, "replay.py"),
                         "--bank", bank, "--pcr", pcr, f.name],
                        capture_output=True, text=True)
                    self.assertEqual(out.returncode, rc, out.stdout + out.stderr)
                    self.assertIn(f"{len(raws)} records", out.stdout)
                    self.assertTrue(out.stdout.rstrip().endswith(word), out.stdout)


if __name__ == "__main__":
    unittest.main()
