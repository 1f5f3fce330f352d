#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read a git format-patch cover letter.

  cover.py msgid FILE        print its Message-ID (without <>)
  cover.py description FILE  print subject and body as a branch description,
                             the form --cover-from-description=subject reads
"""
import email
import email.policy
import re
import sys


def main():
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0)
    if len(sys.argv) != 3 or sys.argv[1] not in ("msgid", "description"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    what, path = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    if what == "msgid":
        if msg["Message-ID"] is None:
            sys.exit(f"{path}: no Message-ID")
        print(msg["Message-ID"].strip().strip("<>"))
        return
    subject = re.sub(r"^\[[^]]*\]\s*", "", str(msg["Subject"]))
    body = []
    # The description ends where git's shortlog ("Author (N):") begins.
    for line in msg.get_content().splitlines():
        if re.match(r"^\S.* \(\d+\):$", line):
            break
        body.append(line)
    print(subject + "\n\n" + "\n".join(body).strip())


main()
