"""What a bronze -> silver run covers: the agency's bronze files, the partitions in range."""

from __future__ import annotations

import datetime as dt

import attrs
from etl_core.errors import DataError, ObjectNotFound
from etl_core.model import ObjectInfo
from etl_core.ports import ObjectStore

from data_pipeline.bronze_to_silver.fingerprint import input_fingerprint
from data_pipeline.store.layout import BRONZE_PREFIX, partition_of, partition_path

BRONZE_SUFFIXES = (".ndjson", ".ndjson.gz")


@attrs.frozen
class Plan:
    """The agency's whole bronze (the dedupe scope) and the partitions to (re)publish."""

    agency_id: int
    agencies: ObjectInfo
    files: tuple[ObjectInfo, ...]  # every bronze file of the agency, in key order
    days: tuple[str, ...]  # dt of the partitions in range that have bronze files, ascending
    fingerprint: str
    ignored: tuple[str, ...] = ()  # keys under the agency's prefix that are not bronze files
    # Bronze files (by suffix) whose key names no partition of the agency (dt=2024-02-30, no
    # dt=, another agency_id): one message each, naming the key and why. Not folded, not in the
    # fingerprint or the ledger: one misplaced file never blocks the agency's others.
    skipped: tuple[str, ...] = ()

    def partition(self, day: str) -> str:
        """agency_id=<id>/dt=<day>."""
        return partition_path(self.agency_id, day)

    @property
    def partitions(self) -> tuple[str, ...]:
        return tuple(self.partition(day) for day in self.days)

    @property
    def bytes_in(self) -> int:
        return sum(info.size for info in self.files)

    def day_of(self, key: str) -> str:
        return partition_of(key)[1]


def in_range(day: str, first: dt.date | None, last: dt.date | None) -> bool:
    """first <= day <= last, either bound optional (ISO dates compare as strings)."""
    return (first is None or day >= first.isoformat()) and (last is None or day <= last.isoformat())


async def make_plan(
    bronze: ObjectStore,
    agency_id: int,
    *,
    agencies_key: str,
    first: dt.date | None = None,
    last: dt.date | None = None,
) -> Plan:
    """List the agency's bronze and fingerprint it; reads no bodies.

    Raises DataError if the agencies file is missing. Bronze keys that name no partition of the
    agency are skipped (Plan.skipped), not folded.
    """
    try:
        agencies = await bronze.head(agencies_key)
    except ObjectNotFound:
        raise DataError(
            f"{agencies_key}: the agencies reference file is missing from the bronze store"
        ) from None
    prefix = f"{BRONZE_PREFIX}agency_id={agency_id}/"
    files: list[ObjectInfo] = []
    ignored: list[str] = []
    skipped: list[str] = []
    async for info in bronze.list(prefix):
        if not info.key.endswith(BRONZE_SUFFIXES):
            ignored.append(info.key)
            continue
        try:
            owner, _ = partition_of(info.key)
        except DataError as exc:  # no dt=, or no calendar date
            skipped.append(str(exc))
            continue
        if owner != agency_id:
            skipped.append(f"{info.key}: names agency {owner} under agency {agency_id}'s prefix")
            continue
        files.append(info)
    days = sorted({partition_of(info.key)[1] for info in files})
    return Plan(
        agency_id=agency_id,
        agencies=agencies,
        files=tuple(files),
        days=tuple(day for day in days if in_range(day, first, last)),
        fingerprint=input_fingerprint(agencies, files),
        ignored=tuple(ignored),
        skipped=tuple(skipped),
    )
