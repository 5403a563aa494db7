"""BronzeRecordSource: an agency's bronze NDJSON files in an object store, as a RecordSource."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

import attrs
import orjson

from etl_core.errors import ObjectStoreError, SourceError
from etl_core.model import SourceBatch
from etl_core.ports import ObjectStore
from etl_core.raw_records import RESERVED_KEYS, SOURCE_KEY, raw_record

BRONZE_PREFIX = "bronze/"  # the layout of ARCHITECTURE.md: bronze/agency_id=<id>/dt=<day>/part-*
BRONZE_SUFFIXES = (".ndjson", ".ndjson.gz")
_GZIP_MAGIC = b"\x1f\x8b"
_BLANK = b" \t\r\n"
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer, not zlib's


@attrs.define
class BronzeRecordSource:
    """RecordSource over `bronze/agency_id=<id>/**/part-*.ndjson[.gz]` of one store, in key order.

    Every non-blank line is one record: the JSON object orjson parses from it (the transform's
    own first parser), or else a raw record carrying the line's exact text (decoded with
    surrogateescape, so even invalid UTF-8 round-trips), which validation dead-letters exactly as
    the bronze line. A line whose object uses a reserved key travels raw too. Each record has
    `__source__` = "<key relative to bronze/>:<line>" (etl_core.raw_records).

    Checkpoint = "<key>:<line>" of a batch's last record: resuming reads the rest of that file
    after that line, then every later key. Objects are streamed (gzip detected by magic), so
    memory is bounded by batch_size and chunk_size. Store failures become SourceError, except
    TemporaryFailure (throttling), which keeps its exit code 75.
    """

    store: ObjectStore
    batch_size: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    chunk_size: int = attrs.field(default=1 << 20, validator=attrs.validators.ge(1))

    async def batches(
        self, agency_id: int, checkpoint: str | None = None
    ) -> AsyncIterator[SourceBatch]:
        """Batches of the agency's bronze lines after checkpoint. Raises SourceError."""
        prefix = f"{BRONZE_PREFIX}agency_id={int(agency_id)}/"
        after_key, after_line = _parse(checkpoint, prefix)
        records: list[dict[str, Any]] = []
        for key in await self._keys(prefix):
            if after_key is not None and key < after_key:
                continue
            skip = after_line if key == after_key else 0
            source = key[len(BRONZE_PREFIX) :]
            last = 0
            async for line_no, line in self._lines(key):
                if line_no <= skip or not line.strip(_BLANK):
                    continue
                records.append(_record(line, f"{source}:{line_no}"))
                last = line_no
                if len(records) >= self.batch_size:
                    yield SourceBatch(records=tuple(records), checkpoint=f"{key}:{last}")
                    records = []
            if records:  # a batch never spans files, so its checkpoint names its only file
                yield SourceBatch(records=tuple(records), checkpoint=f"{key}:{last}")
                records = []

    async def _keys(self, prefix: str) -> list[str]:
        try:
            return [info.key async for info in self.store.list(prefix) if _is_bronze(info.key)]
        except ObjectStoreError as exc:
            raise SourceError(f"cannot list {prefix}: {exc}") from exc

    async def _lines(self, key: str) -> AsyncIterator[tuple[int, bytes]]:
        """(line number, line without its newline) of the object, numbered from 1."""
        pending = b""
        line_no = 0
        try:
            async for text in _decoded(self.store.stream(key, self.chunk_size), key):
                pending += text
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    line_no += 1
                    yield line_no, line
        except ObjectStoreError as exc:
            raise SourceError(f"cannot read {key}: {exc}") from exc
        if pending:
            yield line_no + 1, pending


def _is_bronze(key: str) -> bool:
    return key.endswith(BRONZE_SUFFIXES) and "/part-" in key


def _parse(checkpoint: str | None, prefix: str) -> tuple[str | None, int]:
    if checkpoint is None:
        return None, 0
    key, _, line = checkpoint.rpartition(":")
    if not key.startswith(prefix) or not line.isdigit():
        raise SourceError(
            f"checkpoint {checkpoint!r} is not '<key under {prefix}>:<line>' of this source"
        )
    return key, int(line)


def _record(line: bytes, source: str) -> dict[str, Any]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict) and RESERVED_KEYS.isdisjoint(value):
        value[SOURCE_KEY] = source
        return value
    return raw_record(line.decode("utf-8", "surrogateescape"), source)


async def _decoded(chunks: AsyncIterator[bytes], key: str) -> AsyncIterator[bytes]:
    """The stored bytes, gunzipped (every member) when the object starts with the gzip magic."""
    head = b""
    async for chunk in chunks:
        head += chunk
        if len(head) >= len(_GZIP_MAGIC):
            break
    if not head.startswith(_GZIP_MAGIC):
        if head:
            yield head
        async for chunk in chunks:
            yield chunk
        return
    inflater = zlib.decompressobj(_GZIP_WBITS)
    try:
        async for chunk in _prepend(head, chunks):
            while chunk:
                yield inflater.decompress(chunk)
                chunk = inflater.unused_data if inflater.eof else b""
                if chunk:  # another gzip member follows
                    inflater = zlib.decompressobj(_GZIP_WBITS)
    except zlib.error as exc:
        raise SourceError(f"{key}: corrupt gzip data: {exc}") from None
    if not inflater.eof:
        raise SourceError(f"{key}: gzip data ends before the end of its stream")


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
