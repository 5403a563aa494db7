"""Pull one agency's records from a RecordSource into bronze parts, resumable from a checkpoint."""

from __future__ import annotations

from typing import Any, Final

import attrs
import orjson
from etl_core import serde
from etl_core.errors import ConfigError, DataError, ObjectNotFound
from etl_core.model import Counts, PartitionRecord
from etl_core.ports import ObjectStore, RecordSource
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.layout import BRONZE_PREFIX, partition_path
from data_pipeline.put_once import stored_equals
from data_pipeline.records import record_line

CHECKPOINT_PREFIX: Final = "_checkpoints/ingest_api/"


@attrs.frozen
class IngestOptions:
    """One ingestion: an agency's pull from one source (named by source_id) into one dt."""

    agency_id: int
    day: str
    source_id: str  # short, stable name of the source (URL and reading options)
    records_per_part: int = attrs.field(default=1000, validator=attrs.validators.ge(1))

    @property
    def checkpoint_key(self) -> str:
        """_checkpoints/ingest_api/agency_id=<id>/source=<source_id>/dt=<day>.json."""
        return f"{checkpoints_prefix(self.agency_id, self.source_id)}dt={self.day}.json"

    def part_key(self, number: int) -> str:
        """bronze/agency_id=<id>/dt=<day>/part-<source_id>-<number:06d>.ndjson."""
        partition = partition_path(self.agency_id, self.day)
        return f"{BRONZE_PREFIX}{partition}/part-{self.source_id}-{number:06d}.ndjson"


def checkpoints_prefix(agency_id: int, source_id: str) -> str:
    """Where the checkpoints of one agency's pulls from one source live."""
    return f"{CHECKPOINT_PREFIX}agency_id={agency_id}/source={source_id}/"


@attrs.frozen
class IngestState:
    """The checkpoint object: how far the pull got. Written (put, atomic) only after the part
    it counts is durable, so `cursor` never runs ahead of bronze."""

    cursor: str | None = None  # the source's checkpoint after the last durable part
    next_part: int = 0
    records: int = 0  # records in this pull's parts so far
    complete: bool = False  # the source had nothing after `cursor` when last asked
    run_id: str | None = None  # the run that wrote this state


async def load_state(store: ObjectStore, key: str) -> IngestState:
    """The state at key; a fresh one if absent. Raises DataError if it is unreadable."""
    try:
        body = await store.get(key)
    except ObjectNotFound:
        return IngestState()
    try:
        return serde.structure(orjson.loads(body), IngestState, source=key)
    except (orjson.JSONDecodeError, ConfigError) as exc:
        raise DataError(f"{key}: unreadable ingestion checkpoint: {exc}") from None


def dump_state(state: IngestState) -> bytes:
    """The checkpoint object's body."""
    return orjson.dumps(serde.unstructure(state), option=orjson.OPT_INDENT_2) + b"\n"


async def ingest(
    ctx: RunContext, source: RecordSource, store: ObjectStore, options: IngestOptions
) -> JobOutcome:
    """Append the records after the checkpoint to bronze, one part per records_per_part (whole
    source batches), each part before the checkpoint that counts it.

    Part names are numbered from the checkpoint, so a run that died between a part and its
    checkpoint meets its own part again: identical content is accepted (counted as duplicate
    rows), different content (upstream changed meanwhile) is kept and the new batch takes the
    next number. Bronze is never overwritten and no record is lost.
    """
    state = await load_state(store, options.checkpoint_key)
    started_from = state.cursor
    run = _Run(ctx, store, options, state)
    lines: list[bytes] = []
    cursor = state.cursor
    with ctx.span("ingest", resumed=started_from is not None):
        async for batch in source.batches(options.agency_id, state.cursor):
            lines.extend(record_line(record) for record in batch.records)
            cursor = batch.checkpoint
            if len(lines) >= options.records_per_part:
                await run.commit(lines, cursor)
                lines = []
        if lines:
            await run.commit(lines, cursor)
        if not run.state.complete or run.state.cursor != cursor:
            run.state = attrs.evolve(run.state, cursor=cursor, complete=True, run_id=ctx.run_id)
            await store.put(options.checkpoint_key, dump_state(run.state))
            run.written_state = True
    partition = partition_path(options.agency_id, options.day)
    summary: dict[str, Any] = {
        "bronze": f"{BRONZE_PREFIX}{partition}/part-{options.source_id}-*.ndjson",
        "parts written": len(run.parts),
        "parts already there (resumed)": run.recovered,
        "resumed from": started_from or "the start",
        "checkpoint": options.checkpoint_key + ("" if run.written_state else " (unchanged)"),
        "records in this pull": run.state.records,
    }
    return JobOutcome(counts=run.counts, artifacts=tuple(run.parts), summary=summary)


@attrs.define
class _Run:
    ctx: RunContext
    store: ObjectStore
    options: IngestOptions
    state: IngestState
    counts: Counts = Counts()
    parts: list[str] = attrs.field(factory=list)
    recovered: int = 0
    written_state: bool = False

    async def commit(self, lines: list[bytes], cursor: str | None) -> None:
        """Make the part durable, then the checkpoint after it, then its ledger row (so a run
        that fails later still reports, per part, what it wrote)."""
        body = b"".join(line + b"\n" for line in lines)
        rows = len(lines)
        number = self.state.next_part
        while True:
            key = self.options.part_key(number)
            if await self.store.put_if_absent(key, body):
                self.parts.append(key)
                status = "published"
                counts = Counts(rows, rows, 0, 0, len(body), len(body))
                break
            if await stored_equals(self.store, key, body):
                self.recovered += 1
                status = "skipped"
                counts = Counts(rows_in=rows, rows_duplicate=rows, bytes_in=len(body))
                self.ctx.log.info("%s was written by an interrupted attempt: kept", key)
                break
            self.ctx.log.warning(
                "%s holds another version of this batch (upstream changed): kept; "
                "writing the batch as the next part",
                key,
            )
            number += 1
        started_from = self.state.cursor
        self.state = IngestState(
            cursor=cursor,
            next_part=number + 1,
            records=self.state.records + rows,
            run_id=self.ctx.run_id,
        )
        await self.store.put(self.options.checkpoint_key, dump_state(self.state))
        self.written_state = True
        self.counts += counts
        await self.ctx.record_partition(
            PartitionRecord(
                run_id=self.ctx.run_id,
                job=self.ctx.job,
                partition=key.removeprefix(BRONZE_PREFIX),
                input_fingerprint=f"{self.options.source_id}:{started_from}..{cursor}",
                counts=counts,
                agency_id=self.options.agency_id,
                status="dry_run" if self.ctx.dry_run else status,
                artifacts=(key,),
            )
        )
        self.ctx.progress(f"{self.ctx.job}: {self.state.records:,} records, part {number}")


async def pending_day(store: ObjectStore, agency_id: int, source_id: str) -> str | None:
    """The dt of this source's newest pull if it is unfinished (to finish it first), else None.

    Only the newest counts: an older pull left unfinished (e.g. abandoned after a permanent
    failure, later days pulled with --dt) is never resumed implicitly.
    """
    prefix = checkpoints_prefix(agency_id, source_id)
    newest: tuple[str, str] | None = None
    async for info in store.list(prefix):
        name = info.key[len(prefix) :]
        if name.startswith("dt=") and name.endswith(".json"):
            newest = max(newest or ("", ""), (name[3:-5], info.key))
    if newest is None or (await load_state(store, newest[1])).complete:
        return None
    return newest[0]
