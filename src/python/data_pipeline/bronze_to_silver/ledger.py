"""The per-agency ledger of bronze objects folded into silver: which (key, etag, size) each fold
version covers, so that a run reads only new bronze and notices bronze that changed.

A fold's ledger is written before its table commits, under a name that carries the fold version
(`_ledger/agency_id=<id>/fold-<version>.json`). The version silver's commit records (a Delta app
transaction) says which ledger is in force, so the ledger can never disagree with the tables: a
ledger written by a run that died before its commit names a version no commit recorded, and the
re-run of that version overwrites it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs
import orjson
from etl_core.errors import DataError, ObjectNotFound
from etl_core.model import ObjectInfo
from etl_core.ports import ObjectStore
from etl_core.serde import structure, unstructure

from data_pipeline.bronze_to_silver.fingerprint import TRANSFORM_VERSION

LEDGER_PREFIX = "_ledger"


@attrs.frozen
class FoldedFile:
    """One bronze object as it was when folded in."""

    key: str
    size: int
    etag: str | None = None

    @classmethod
    def of(cls, info: ObjectInfo) -> FoldedFile:
        return cls(info.key, info.size, info.etag)


@attrs.frozen
class FoldLedger:
    """What silver holds of one agency at one fold version."""

    agency_id: int
    version: int = 0
    transform: str = TRANSFORM_VERSION
    agencies: FoldedFile | None = None  # the agencies file the rows were enriched from
    files: tuple[FoldedFile, ...] = ()
    run_id: str | None = None

    def keys(self) -> frozenset[str]:
        return frozenset(f.key for f in self.files)

    def changes(self, agencies: ObjectInfo, bronze: Iterable[ObjectInfo]) -> Iterator[str]:
        """Why this ledger no longer describes the agency's input (nothing when it does):
        a folded object that changed or vanished, another agencies file or transform version."""
        if self.version == 0:
            return
        if self.transform != TRANSFORM_VERSION:
            yield f"transform version {self.transform} -> {TRANSFORM_VERSION}"
        if self.agencies is not None and self.agencies != FoldedFile.of(agencies):
            yield f"{agencies.key} changed"
        now = {info.key: FoldedFile.of(info) for info in bronze}
        for folded in self.files:
            current = now.get(folded.key)
            if current is None:
                yield f"{folded.key} vanished"
            elif current != folded:
                yield f"{folded.key} changed (etag {folded.etag} -> {current.etag})"


def ledger_key(agency_id: int, version: int) -> str:
    return f"{LEDGER_PREFIX}/agency_id={agency_id}/fold-{version:010d}.json"


async def load_ledger(store: ObjectStore, agency_id: int, version: int) -> FoldLedger:
    """The ledger of the agency's committed fold version (empty at version 0).

    Raises DataError if silver records a version whose ledger is missing or unreadable.
    """
    if version == 0:
        return FoldLedger(agency_id)
    key = ledger_key(agency_id, version)
    try:
        body = await store.get(key)
    except ObjectNotFound:
        raise DataError(
            f"{key}: silver records fold {version} of agency {agency_id} but its ledger is "
            "missing; rebuild the agency with --reprocess"
        ) from None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"{key}: not a ledger: {exc}") from None
    return structure(data, FoldLedger, source=key)


async def save_ledger(store: ObjectStore, ledger: FoldLedger) -> str:
    """Write the ledger of a fold about to be committed (overwriting a dead attempt's)."""
    key = ledger_key(ledger.agency_id, ledger.version)
    await store.put(key, orjson.dumps(unstructure(ledger), option=orjson.OPT_INDENT_2))
    return key
