"""Write-once objects: put_if_absent, accepting an identical object left by an earlier attempt."""

from __future__ import annotations

import hashlib
import re

from etl_core.errors import DataError, ObjectNotFound
from etl_core.ports import ObjectStore

_MD5_ETAG = re.compile(r"[0-9a-f]{32}")


class ObjectConflict(DataError):
    """A write-once key already holds different content."""


async def stored_equals(store: ObjectStore, key: str, body: bytes) -> bool:
    """Whether key holds exactly body. A plain md5 etag (local stores, single-part S3 uploads)
    decides from a head; otherwise (multipart etag, none) the object is read and compared."""
    try:
        info = await store.head(key)
    except ObjectNotFound:
        return False
    if info.size != len(body):
        return False
    if info.etag is not None and _MD5_ETAG.fullmatch(info.etag):
        return info.etag == hashlib.md5(body, usedforsecurity=False).hexdigest()
    try:
        return await store.get(key) == body
    except ObjectNotFound:
        return False


async def put_once(store: ObjectStore, key: str, body: bytes) -> bool:
    """True if this call created key; False if key already held exactly body (a retried write).
    Raises ObjectConflict if it holds something else."""
    if await store.put_if_absent(key, body):
        return True
    if await stored_equals(store, key, body):
        return False
    raise ObjectConflict(f"{key} already exists with different content; it is never overwritten")
