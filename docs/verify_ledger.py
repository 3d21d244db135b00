#!/usr/bin/env python3
"""Verify an optout ledger export without optout (the format: docs/ledger-format.md).

    python3 verify_ledger.py EXPORT.jsonl [--checkpoint CHECKPOINT.json]

Standard library only. For each line it re-derives the event's canonical bytes with
json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False), recomputes the
chain hash SHA-256(prev_hash || canonical bytes) and checks: the line is canonical JSON,
the event has the fields of its kind with the right JSON types, prev_hash is the previous
event's hash (32 zero bytes before position 1), positions run 1, 2, 3 ... without gaps,
recorded_at never goes backwards and the hash recomputes. With --checkpoint it also checks
that the export holds the checkpointed position with the checkpoint's hash.

It does NOT check the checkpoint's ed25519 signature: the standard library has no ed25519.
Check it with optout's own verifier or an ed25519 library, as docs/ledger-format.md shows.

Prints "ok: N events, head position P hash H" and exits 0, or prints
"FAIL at position P: reason" and exits 1. JSON integers are parsed as Python ints, so
64-bit member ids keep every digit.
"""
import argparse
import hashlib
import json
import sys

COMMON = {"position": int, "recorded_at_us": int, "kind": str}
KINDS = {  # kind: (required fields, optional fields), each name: JSON type
    "choice": ({"member": int, "purpose": str, "allowed": bool, "at_us": int, "source": str,
                "actor": str},
               {"policy_version": int, "notice_version": str, "notice_language": str,
                "jurisdiction": str, "idempotency_key": str}),
    "policy": ({"version": int, "effective_from_us": int, "document": str}, {}),
    "dataset": ({"dataset_id": str, "purpose": str, "cutoff_us": int, "snapshot_position": int,
                 "manifest_sha256": str, "rows_written": int, "members_included": int}, {}),
}
LINE = {"event": dict, "hash": str, "position": int, "prev_hash": str}


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fail(position, reason):
    print(f"FAIL at position {position}: {reason}")
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("--checkpoint")
    args = parser.parse_args()
    try:
        export = open(args.export, "rb")
        checkpoint = None
        if args.checkpoint:
            with open(args.checkpoint, encoding="utf-8") as file:
                checkpoint = json.load(file)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    if checkpoint is not None and not (isinstance(checkpoint, dict)
                                       and type(checkpoint.get("position")) is int
                                       and type(checkpoint.get("hash")) is str):
        parser.error("the checkpoint needs an integer position and a hash")
    prev, position, last_recorded_at, checkpoint_seen = bytes(32), 0, None, False
    with export:
        for raw in export:
            if not raw.rstrip(b"\r\n"):
                continue
            position += 1
            try:
                text = raw.rstrip(b"\r\n").decode("utf-8")
                line = json.loads(text)
            except ValueError as error:
                fail(position, f"not a JSON line: {error}")
            if type(line) is not dict or {k: type(v) for k, v in line.items()} != LINE:
                fail(position, "not an export line (event, hash, position, prev_hash)")
            event = line["event"]
            required, optional = KINDS.get(event.get("kind"), ({}, {}))
            expected = {**COMMON, **required, **{k: t for k, t in optional.items() if k in event}}
            actual = {k: type(v) for k, v in event.items()}
            if actual != expected or not required:
                wrong = sorted(k for k in actual.keys() | expected.keys()
                               if actual.get(k) is not expected.get(k))
                fail(position, f"{event.get('kind')!r} event with missing, unknown or mistyped "
                               f"fields {wrong}")
            if canonical(line) != text:
                fail(position, "the line is not in canonical form")
            if line["prev_hash"] != prev.hex():
                fail(position, f"prev_hash {line['prev_hash']} is not the previous hash "
                               f"{prev.hex()}")
            if line["position"] != position or event["position"] != position:
                fail(position, f"found position {line['position']} (event {event['position']}): "
                               "missing, duplicated or reordered events")
            if last_recorded_at is not None and event["recorded_at_us"] < last_recorded_at:
                fail(position, "recorded_at goes backwards")
            digest = hashlib.sha256(prev + canonical(event).encode("utf-8")).digest()
            if digest.hex() != line["hash"]:
                fail(position, f"hash mismatch: export {line['hash']}, recomputed {digest.hex()}")
            if checkpoint is not None and checkpoint["position"] == position:
                if checkpoint["hash"].lower() != digest.hex():
                    fail(position, f"the checkpoint says hash {checkpoint['hash']}: rewritten")
                checkpoint_seen = True
            prev, last_recorded_at = digest, event["recorded_at_us"]
    if checkpoint is not None and not checkpoint_seen:
        fail(checkpoint["position"], "the export ends before the checkpointed position")
    print(f"ok: {position} events, head position {position} hash {prev.hex()}")


if __name__ == "__main__":
    main()
