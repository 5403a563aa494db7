"""Fingerprints of a partition's input (bronze listing) and output (silver + dead-letter bytes)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import orjson
from etl_core.model import DeadLetter, ObjectInfo

TRANSFORM_VERSION = "bronze_to_silver/1"
"""Bump when the transform's output for the same input changes: every partition republishes."""


def input_fingerprint(agencies: ObjectInfo, bronze: Iterable[ObjectInfo]) -> str:
    """sha256 over the transform version, the agencies file and the sorted bronze listing.

    Sizes and etags stand for contents, so this needs a listing, never a body.
    """
    digest = hashlib.sha256()
    digest.update(orjson.dumps(["transform", TRANSFORM_VERSION]) + b"\n")
    digest.update(orjson.dumps(["agencies", agencies.key, agencies.size, agencies.etag]) + b"\n")
    for info in sorted(bronze, key=lambda info: info.key):
        digest.update(orjson.dumps(["bronze", info.key, info.size, info.etag]) + b"\n")
    return digest.hexdigest()


def content_fingerprint(silver: Iterable[bytes], dead_letters: Iterable[DeadLetter]) -> str:
    """sha256 of the silver rows and the dead letters' (reason, source, raw), never the run_id:
    two runs that produce the same partition get the same fingerprint."""
    digest = hashlib.sha256(b"silver\n")
    for row in silver:
        digest.update(row)
        digest.update(b"\n")
    digest.update(b"deadletter\n")
    for dead in dead_letters:
        digest.update(orjson.dumps([dead.reason, dead.source, dead.raw]))
        digest.update(b"\n")
    return digest.hexdigest()
