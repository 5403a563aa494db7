"""Export one agency from the silver and dead-letter tables: its committed rows, not re-validated.

Flow: read the agency's silver rows and dead letters at one fold version of silver -> turn each
silver row back into the JSON row validate.py built for it (lineage columns dropped), ordered by
record_id, and each dead letter into its dead_letter_line -> agency_export.write_export writes,
uploads and records them as it does for a record source.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import attrs
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from etl_core.errors import NothingForAgency, TableConflict
from etl_core.model import Counts, DeadLetter
from etl_core.ports import ObjectStore, SilverTables
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.export.artifacts import ExportOptions, Extracted, write_export
from data_pipeline.silver.schema import SILVER_FIELDS
from data_pipeline.silver.timeparse import format_utc
from data_pipeline.store.ndjson import dead_letter_line

_TIMESTAMPS: Final = ("occurred_at", "updated_at")
_DEAD_LETTER_ORDER: Final = [(name, "ascending") for name in ("source", "line", "reason", "raw")]
_BATCH_ROWS: Final = 10_000


class NothingInSilver(NothingForAgency):
    """The agency has neither silver rows nor dead letters: bronze_to_silver has not run for it."""


@attrs.frozen
class AgencyTables:
    """One agency's committed rows of both tables, as of silver's fold `version`."""

    silver: pa.Table
    deadletter: pa.Table
    version: int


async def read_agency(tables: SilverTables, agency_id: int) -> AgencyTables:
    """The agency's rows of both tables. Raises TableConflict (retryable) when a fold of the
    agency committed in between, or committed its dead letters and not yet its silver."""
    version = await tables.silver.version(agency_id)
    silver = await tables.silver.read(agency_id)
    deadletter = await tables.deadletter.read(agency_id)
    dead_version = await tables.deadletter.version(agency_id)
    now = await tables.silver.version(agency_id)
    if now != version or dead_version > now:
        raise TableConflict(
            f"agency {agency_id}: a bronze_to_silver fold is between its commits (silver at fold "
            f"{now}, dead letters at fold {dead_version}): export again once it has finished "
            "(or, if it was interrupted, after re-running bronze_to_silver)"
        )
    return AgencyTables(_rows(silver), _rows(deadletter), version)


def _rows(table: Any) -> pa.Table:
    return table if table is not None else pa.table({})


async def export_silver(
    ctx: RunContext, tables: SilverTables, store: ObjectStore, options: ExportOptions
) -> JobOutcome:
    """Export the agency's silver rows and dead letters (agency_export.write_export). Counts:
    rows_in = both, rows_duplicate = 0 (bronze_to_silver deduped them); the fingerprint is
    silver's fold version. Raises NothingInSilver when the agency has no rows in either table."""

    async def extract(dead_path: Path) -> Extracted:
        read = await read_agency(tables, options.agency_id)
        if read.silver.num_rows == 0 and read.deadletter.num_rows == 0:
            raise NothingInSilver(
                f"agency {options.agency_id}: nothing in silver for this agency at "
                f"{options.source_label} (no silver rows, no dead letters): run bronze_to_silver "
                f"--agency-id {options.agency_id} first"
            )
        reasons: collections.Counter[str] = collections.Counter()
        with dead_path.open("wb") as dead_file:
            for line, reason in dead_letter_lines(read.deadletter):
                dead_file.write(line + b"\n")
                reasons[reason] += 1
        rows, dead = read.silver.num_rows, read.deadletter.num_rows
        counts = Counts(rows_in=rows + dead, rows_out=rows, rows_dead_letter=dead)
        ctx.progress(f"{ctx.job}: {rows:,} silver rows, {dead:,} dead letters read")
        return Extracted(silver_rows(read.silver), counts, reasons, f"fold-{read.version}")

    return await write_export(ctx, store, options, extract, phase="read")


def silver_rows(table: pa.Table) -> Iterator[bytes]:
    """Each silver table row as the JSON object validate.py builds (SILVER_FIELDS in order,
    instants `YYYY-MM-DDTHH:MM:SSZ`, dt `YYYY-MM-DD`), ordered by record_id."""
    if table.num_rows == 0:
        return
    table = table.select(list(SILVER_FIELDS)).sort_by("record_id")
    for name in _TIMESTAMPS:  # whole seconds since the epoch, formatted as validate.py does
        seconds = pc.cast(table[name], pa.timestamp("s", tz="UTC"), safe=False).cast(pa.int64())
        table = table.set_column(table.schema.get_field_index(name), name, seconds)
    for batch in table.to_batches(max_chunksize=_BATCH_ROWS):
        for row in batch.to_pylist():
            row["dt"] = row["dt"].isoformat()
            for name in _TIMESTAMPS:
                if row[name] is not None:
                    row[name] = format_utc(row[name])
            yield orjson.dumps(row)


def dead_letter_lines(table: pa.Table) -> Iterator[tuple[bytes, str]]:
    """(dead_letter_line, reason) of each dead-letter table row, ordered by source and line; the
    run_id is the run that dead-lettered the row."""
    if table.num_rows == 0:
        return
    for row in table.sort_by(_DEAD_LETTER_ORDER).to_pylist():
        dead = DeadLetter(
            row["reason"], row["source"], row["raw"] or "", run_id=row["run_id"],
            detail=row["detail"], line=row["line"],
        )  # fmt: skip
        yield dead_letter_line(dead), dead.reason
