"""A read-only view of bronze with an agency's stored corrections applied: the effective input."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

import attrs
from etl_core.model import ObjectInfo
from etl_core.ports import ObjectStore
from etl_core.store_views import ReadOnlyObjectStore

from data_pipeline.bronze_to_silver.corrections import bytes_key, load_corrections
from data_pipeline.silver.bronze_body import UnreadableFile, decompress


@attrs.define
class CorrectedBronze(ReadOnlyObjectStore):
    """Bronze whose corrected files read with their lines replaced, in place (line numbers and row
    counts stay), and list with an etag that also covers the corrections, so the input
    fingerprint changes exactly when an agency's corrections do.

    `watch` names line keys whose line numbers get() records in `found` (replay_dead_letters
    locates the rows it replays with it). A corrected gzip file reads back uncompressed.
    """

    VIEW: ClassVar[str] = "the corrected bronze view"

    fixes: Mapping[str, Mapping[str, bytes]]  # bronze key -> original line key -> replacement
    watch: Mapping[str, frozenset[str]] = attrs.field(factory=dict)  # bronze key -> line keys
    found: dict[tuple[str, str], list[int]] = attrs.field(factory=dict)
    _digests: dict[str, str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._digests = {}
        for key, fixes in self.fixes.items():
            digest = hashlib.sha256()
            for line_key in sorted(fixes):
                digest.update(f"{line_key}\0".encode() + fixes[line_key] + b"\n")
            self._digests[key] = digest.hexdigest()[:16]

    async def get(self, key: str) -> bytes:
        """The body, with corrected lines replaced. Raises ObjectNotFound."""
        body = await self.store.get(key)
        fixes, watch = self.fixes.get(key, {}), self.watch.get(key, frozenset())
        if not fixes and not watch:
            return body
        try:
            lines = decompress(body).split(b"\n")
        except UnreadableFile:
            return body  # no line to correct: the transform makes it a file-level dead letter
        for index, line in enumerate(lines):
            if not line.strip(b" \t\r\n"):
                continue
            line_key = bytes_key(line)
            if line_key in watch:
                self.found.setdefault((key, line_key), []).append(index + 1)
            fixed = fixes.get(line_key)
            if fixed is not None:
                lines[index] = fixed
        return b"\n".join(lines) if fixes else body

    async def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Like get, in chunks."""
        body = await self.get(key)
        for start in range(0, len(body), chunk_size):
            yield body[start : start + chunk_size]

    async def head(self, key: str) -> ObjectInfo:
        """The stored object's info, its etag stamped with its corrections."""
        return self._stamp(await self.store.head(key))

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """The stored listing, corrected files' etags stamped with their corrections."""
        async for info in self.store.list(prefix):
            yield self._stamp(info)

    def _stamp(self, info: ObjectInfo) -> ObjectInfo:
        digest = self._digests.get(info.key)
        return info if digest is None else attrs.evolve(info, etag=f"{info.etag}+fix-{digest}")


async def with_corrections(store: ObjectStore, bronze: ObjectStore, agency_id: int) -> ObjectStore:
    """bronze as a CorrectedBronze when the agency has stored corrections in store; else bronze.

    A CorrectedBronze passed in is returned as is (its owner built it with the corrections).
    """
    if isinstance(bronze, CorrectedBronze):
        return bronze
    stored = await load_corrections(store, agency_id)
    if not stored.fixes:
        return bronze
    return CorrectedBronze(bronze, stored.bronze_fixes())
