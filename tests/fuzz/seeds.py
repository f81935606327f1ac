"""Writes the fuzz seeds (one directory per target) from the repository's own fixtures.

Usage: seeds.py <out dir>. Every seed is a real input the functions' tests use, in the byte
layout of its target (tests/fuzz/src/lib.rs: parts separated by NUL).
"""
import glob
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
out = sys.argv[1]


def records(fn):
    for path in sorted(glob.glob(os.path.join(ROOT, "functions", fn, "tests", "fixtures", "*.json"))):
        try:
            event = json.load(open(path, encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for r in event.get("Records", []):
            attrs = {k: (v or {}).get("stringValue") or "" for k, v in (r.get("messageAttributes") or {}).items()}
            yield r.get("body") or "", attrs


def write(target, items):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    n = 0
    for i, data in enumerate(dict.fromkeys(items)):
        with open(os.path.join(d, f"seed-{i:03}"), "wb") as f:
            f.write(data.encode("utf-8"))
        n += 1
    print(f"seeds  {target:10} {n}")


write("uplink", [b for b, _ in records("outflow")])
write("lifecycle", [a.get("tag", "") + "\0" + b for b, a in records("presence")])
backend = list(records("moderation"))
write("chat", [b for b, a in backend if a.get("mqttSecondTopic", "").startswith("/message")] or ['{"roomId":"1","msg":"hi"}'])
write("command", [b for b, a in backend if a.get("mqttSecondTopic", "").startswith("/command")] or ['{"type":"join","roomId":"1"}'])
keys = ["mqttSecondTopic", "mqttParentTopic", "qoslevel", "mqttMessageId", "timestamp", "encoding"]
write("downlink", ["\0".join(a.get(k, "") for k in keys) + "\0" + b for b, a in records("inflow")])
claims = {"sub": "GID_student@@@001", "r": ["room/message/1", "room/p2p/GID_student@@@001"],
          "w": ["roomSend/message/1"], "iat": 1732239000, "exp": 1732243600, "jti": "t1"}
write("claims", ["GID_student@@@001\0" + json.dumps(claims)])
write("token", ["GID_student@@@001\0ct1.k1.eyJzdWIiOiJHSURfc3R1ZGVudEBAQDAwMSJ9.c2ln",
                "GID_student@@@001\0Signature|abc|key"])
packed = json.dumps({"mqttSecondTopic": {"dataType": "String", "stringValue": "/message/1"}})
failure = json.dumps({"kind": "invalid_topic", "retryable": False, "reason": "r", "function": "inflow",
                      "sourceQueue": "arn", "receiveCount": 1, "deadLetteredAt": 2})
write("deadletter", [packed + "\0" + failure + "\0v", "\0" + failure + "\0v"])
