#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Keylime's own verifier code on ascii measurement lists, offline.

    keylime_check.py --pcr BANK:HEX [--pcr BANK:HEX] [--accept LIST]...
                     [--reject LIST]...

For each LIST and each --pcr, calls keylime.ima.ima.process_measurement_list
(the function Keylime's verifier runs on an agent's IMA list) with the lines
of LIST, PCR 10 of BANK as the quote would give it, that bank as the PCR hash
algorithm, no agent state and no runtime policy: Keylime then replays the
list against PCR 10 (the PCR may match any prefix: the quote can lag the
list) and checks each entry's template hash against its fields, with no
allowlist. A LIST must show sha1 template hashes (ascii_runtime_measurements):
without a policy Keylime takes the list's hashes to be sha1, whatever the PCR
bank. Keylime is imported once for all the lists (slow under emulation).

Keylime's verdict per list and bank is printed with the ids of its failure
events. "accepted": no event but "tomtou" ones (Keylime adds one per
violation record, whose template hash it cannot check); "rejected": an
"ima.pcr_mismatch" event, the list does not replay to PCR 10. Exit 0 when
every verdict is the expected one (--accept or --reject), 1 otherwise, 2 on
bad arguments or if keylime cannot be imported.
"""
import argparse
import logging
import sys

BANKS = ("sha1", "sha256")


def verdict(failure):
    """'accepted', 'rejected' (PCR 10 mismatch) or 'failed' (other events),
    with Keylime's event ids counted."""
    counts = {}
    for event in failure.events:
        counts[event.event_id] = counts.get(event.event_id, 0) + 1
    ids = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) or "none"
    if "ima.pcr_mismatch" in counts:
        return "rejected", ids
    if all(k.endswith(".tomtou") for k in counts):
        return "accepted", ids
    return "failed", ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pcr", action="append", required=True, metavar="BANK:HEX")
    parser.add_argument("--accept", action="append", default=[], metavar="LIST")
    parser.add_argument("--reject", action="append", default=[], metavar="LIST")
    args = parser.parse_args()
    if not args.accept and not args.reject:
        parser.error("no list: give --accept LIST or --reject LIST")
    pcrs = []
    for item in args.pcr:
        bank, _, value = item.partition(":")
        if bank not in BANKS or not value:
            parser.error(f"--pcr {item}: want sha1:HEX or sha256:HEX")
        pcrs.append((bank, value.strip().lower()))

    # Keylime's loggers say which config files are missing; only its errors
    # matter here.
    logging.disable(logging.WARNING)
    try:
        from keylime.common.algorithms import Hash
        from keylime.ima import ima
        import keylime
    except ImportError as err:
        print(f"cannot import keylime: {err}", file=sys.stderr)
        return 2
    version = getattr(keylime, "__version__", None)
    if version is None:
        from importlib import metadata
        version = metadata.version("keylime")

    ok = True
    expected = [(path, "accepted") for path in args.accept]
    expected += [(path, "rejected") for path in args.reject]
    for path, want in expected:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        entries = sum(1 for line in lines if line)
        for bank, value in pcrs:
            _, failure = ima.process_measurement_list(
                None, lines, runtime_policy=None, pcrval=value, hash_alg=Hash(bank))
            got, ids = verdict(failure)
            print(f"keylime {version} {bank}: {got} ({entries} entries of {path}; "
                  f"events: {ids})")
            ok &= got == want
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
