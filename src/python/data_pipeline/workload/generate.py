"""Deterministic generator of the reference workload (WORKLOAD.md): agencies, bronze, manifest."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip as gzip_module
import json
import random
from collections.abc import Iterator
from typing import Any, Final

import attrs
from etl_core import serde
from etl_core.ports import ObjectStore

from data_pipeline.silver.agencies import agencies_csv, reference_agencies
from data_pipeline.silver.reasons import VALIDATION_REASONS
from data_pipeline.store.layout import bronze_key
from data_pipeline.workload.rows import RowFactory

FIRST_DAY: Final = dt.date(2024, 1, 8)
AGENCIES_KEY: Final = "agencies.csv"
MANIFEST_KEY: Final = "manifest.json"
_GZIP_LEVEL: Final = 6


def _rate(instance: WorkloadOptions, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1], got {value}")


@attrs.frozen
class WorkloadOptions:
    """The generator's arguments; equal options give byte-identical output."""

    records: int = attrs.field(validator=attrs.validators.ge(0))
    files: int = attrs.field(validator=attrs.validators.ge(1))
    bad_rate: float = attrs.field(default=0.01, validator=_rate)
    dup_rate: float = attrs.field(default=0.05, validator=_rate)
    seed: int = 7
    gzip: bool = False
    agencies: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    parts_per_day: int = attrs.field(default=1, validator=attrs.validators.ge(1))


@attrs.frozen
class PlannedFile:
    """Where file number `index` goes and how many lines it holds."""

    index: int
    agency_id: int
    day: dt.date
    part: int
    rows: int
    key: str


def plan_files(options: WorkloadOptions) -> list[PlannedFile]:
    """File f -> agency f % A + 1; the agency's k-th file -> dt FIRST_DAY + k // parts_per_day,
    part k % parts_per_day; rows split evenly, the first records % files files one row longer."""
    base, extra = divmod(options.records, options.files)
    planned = []
    for index in range(options.files):
        agency_id = index % options.agencies + 1
        nth = index // options.agencies
        day = FIRST_DAY + dt.timedelta(days=nth // options.parts_per_day)
        part = nth % options.parts_per_day
        key = bronze_key(agency_id, day, part, gzip=options.gzip)
        planned.append(PlannedFile(index, agency_id, day, part, base + (index < extra), key))
    return planned


@attrs.define
class _Tally:
    input_rows: int = 0
    silver_rows: int = 0
    duplicates: int = 0
    dead_letter: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(VALIDATION_REASONS, 0))

    def add(self, kind: str) -> None:
        self.input_rows += 1
        if kind == "new":
            self.silver_rows += 1
        elif kind == "duplicate":
            self.duplicates += 1
        else:
            self.dead_letter[kind] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_rows": self.input_rows,
            "silver_rows": self.silver_rows,
            "duplicates": self.duplicates,
            "dead_letter_rows": sum(self.dead_letter.values()),
            "dead_letter": dict(self.dead_letter),
        }


def iter_workload_files(options: WorkloadOptions) -> Iterator[tuple[str, bytes]]:
    """(key, body) of agencies.csv, every bronze file in file order, and last manifest.json.

    The manifest's expectations are tallied from the lines actually emitted, so they are exact:
    input_rows == silver_rows + duplicates + dead_letter_rows, overall and per agency.
    """
    agencies = reference_agencies(options.agencies)
    yield AGENCIES_KEY, agencies_csv(agencies)
    rng = random.Random(options.seed)  # noqa: S311 -- reproducible test data, not secrets
    factory = RowFactory(rng, agencies, options.bad_rate, options.dup_rate)
    total = _Tally()
    per_agency = {agency.agency_id: _Tally() for agency in agencies}
    input_bytes = uncompressed_bytes = 0
    for planned in plan_files(options):
        rows = factory.file_rows(planned.agency_id, planned.day, planned.rows)
        body = b"".join(row.line + b"\n" for row in rows)
        uncompressed_bytes += len(body)
        if options.gzip:
            body = gzip_module.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
        input_bytes += len(body)
        tally = per_agency[planned.agency_id]
        for row in rows:
            total.add(row.kind)
            tally.add(row.kind)
        yield planned.key, body
    manifest = {
        "generator": "data_pipeline.workload.generate",
        "options": serde.unstructure(options),
        "files": options.files,
        **total.as_dict(),
        "input_bytes": input_bytes,
        "uncompressed_bytes": uncompressed_bytes,
        "agencies": {str(agency_id): t.as_dict() for agency_id, t in per_agency.items()},
    }
    yield MANIFEST_KEY, (json.dumps(manifest, indent=2) + "\n").encode()


async def write_workload(
    store: ObjectStore, options: WorkloadOptions, *, concurrency: int = 8
) -> dict[str, Any]:
    """Write every file of iter_workload_files to store (keys relative to its root); the manifest.

    Up to `concurrency` puts are in flight while the next files are generated.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    slots = asyncio.Semaphore(concurrency)
    pending: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []
    manifest: dict[str, Any] = {}

    async def put(key: str, body: bytes) -> None:
        try:
            await store.put(key, body)
        finally:
            slots.release()

    def settled(task: asyncio.Task[None]) -> None:
        pending.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            failures.append(error)

    try:
        for key, body in iter_workload_files(options):
            if key == MANIFEST_KEY:
                manifest = json.loads(body)
                await asyncio.gather(*pending)  # the manifest lands only after every file
            await slots.acquire()
            if failures:
                raise failures[0]
            task = asyncio.create_task(put(key, body))
            pending.add(task)
            task.add_done_callback(settled)
            await asyncio.sleep(0)  # let the put start before the next file is generated
        await asyncio.gather(*pending)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return manifest
