#!/usr/bin/env python3
# Cross-check helper for sign_crosscheck_test.go: verifies every
# DKIM-Signature of the message in argv[1] with dkimpy, answering key
# lookups from the JSON object {name: txt} in argv[2]. Exit 0 when all pass.
import json
import sys

import dkim

msg = open(sys.argv[1], "rb").read()
records = json.load(open(sys.argv[2]))


def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    return records.get(name.rstrip("."), "").encode()


d = dkim.DKIM(msg)
count = sum(1 for line in msg.split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))
ok = count > 0
for i in range(count):
    res = d.verify(idx=i, dnsfunc=dnsfunc)
    print("signature %d: %s" % (i, res))
    ok = ok and res
sys.exit(0 if ok else 1)
