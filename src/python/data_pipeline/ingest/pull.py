"""Pull one agency's records from a RecordSource into bronze parts, incrementally.

Flow: load the pull state of the agency's source (one object across days, so no day starts
from scratch) -> read the source from where the last pull stopped: its checkpoint (an HTTP
source's checkpoint after its last page asks for that page again and returns only what was
appended), or, with a since field, what changed upstream since the greatest value of that field
landed so far (`?updated_since=`; lines already landed at that instant are skipped) -> write
what is new as bronze parts of this pull's dt, each part before the state that counts it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import attrs
import orjson
from etl_core import serde
from etl_core.errors import ConfigError, DataError, ObjectNotFound
from etl_core.model import Counts, PartitionRecord, PartitionStatus
from etl_core.ports import ObjectStore, RecordSource
from etl_core.raw_records import raw_text
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.ingest.records import record_line
from data_pipeline.silver.timeparse import parse_iso_us
from data_pipeline.store.layout import BRONZE_PREFIX, partition_path
from data_pipeline.store.put_once import stored_equals

CHECKPOINT_PREFIX: Final = "_checkpoints/ingest_api/"
STATE_NAME: Final = "state.json"


@attrs.frozen
class IngestOptions:
    """One ingestion: an agency's pull from one source (named by source_id) into one dt.

    since_field: the record field (an ISO-8601 instant) the source filters on when asked for
    what changed since (HttpSourceConfig.since_param); None: resume by checkpoint alone.
    """

    agency_id: int
    day: str
    source_id: str  # short, stable name of the source (URL and reading options)
    records_per_part: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    since_field: str | None = None

    @property
    def checkpoint_key(self) -> str:
        """_checkpoints/ingest_api/agency_id=<id>/source=<source_id>/state.json."""
        return state_key(self.agency_id, self.source_id)

    def part_key(self, number: int) -> str:
        """bronze/agency_id=<id>/dt=<day>/part-<source_id>-<number:06d>.ndjson."""
        partition = partition_path(self.agency_id, self.day)
        return f"{BRONZE_PREFIX}{partition}/part-{self.source_id}-{number:06d}.ndjson"


def checkpoints_prefix(agency_id: int, source_id: str) -> str:
    """Where the pull state of one agency's source lives."""
    return f"{CHECKPOINT_PREFIX}agency_id={agency_id}/source={source_id}/"


def state_key(agency_id: int, source_id: str) -> str:
    """The one pull-state object of an agency's source, for every day."""
    return f"{checkpoints_prefix(agency_id, source_id)}{STATE_NAME}"


@attrs.frozen
class IngestState:
    """The pull-state object: how far the pulls of one source got. Written (put, atomic) only
    after the part it counts is durable, so nothing in it runs ahead of bronze."""

    cursor: str | None = None  # the source's checkpoint after the last durable part
    next_part: int = 0
    records: int = 0  # records in this pull's parts so far
    complete: bool = False  # the source had nothing after `cursor` when last asked
    run_id: str | None = None  # the run that wrote this state
    day: str | None = None  # the dt this pull writes to
    since: str | None = None  # what this pull asked for changes since (since_field mode)
    since_seen: tuple[str, ...] = ()  # digests of lines at `since` landed before: skipped
    high_water: str | None = None  # the greatest since_field value landed, as the record had it
    boundary: tuple[str, ...] = ()  # digests of the lines landed whose since_field is high_water


def pending_day(state: IngestState) -> str | None:
    """The dt of the pull the state describes if it is unfinished (to finish it first)."""
    return None if state.complete else state.day


def read_from(state: IngestState, options: IngestOptions) -> tuple[str | None, str | None]:
    """(checkpoint, since) a pull starting from state reads from: an unfinished pull goes on
    under its own filter; a new one asks for what changed since the high-water mark (since_field
    mode) or for what follows the last checkpoint."""
    if not state.complete:
        return state.cursor, state.since
    if options.since_field is not None:
        return None, state.high_water
    return state.cursor, None


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


async def load_pull_state(store: ObjectStore, agency_id: int, source_id: str) -> IngestState:
    """The pull state of the agency's source. A store written by an older version holds one
    checkpoint per dt instead (`dt=<day>.json`): the newest is adopted, so its pull goes on."""
    key = state_key(agency_id, source_id)
    try:
        await store.head(key)
    except ObjectNotFound:
        prefix = checkpoints_prefix(agency_id, source_id)
        newest: tuple[str, str] | None = None
        async for info in store.list(prefix):
            name = info.key[len(prefix) :]
            if name.startswith("dt=") and name.endswith(".json"):
                newest = max(newest or ("", ""), (name[3:-5], info.key))
        if newest is None:
            return IngestState()
        return attrs.evolve(await load_state(store, newest[1]), day=newest[0])
    return await load_state(store, key)


def dump_state(state: IngestState) -> bytes:
    """The checkpoint object's body."""
    return orjson.dumps(serde.unstructure(state), option=orjson.OPT_INDENT_2) + b"\n"


async def ingest(
    ctx: RunContext,
    source: RecordSource,
    store: ObjectStore,
    options: IngestOptions,
    state: IngestState | None = None,
) -> JobOutcome:
    """Append what the source has after the pull state (loaded unless given) to bronze, one part
    per records_per_part (whole source batches), each part before the state that counts it.

    Part names are numbered from the state, so a run that died between a part and its state
    meets its own part again: identical content is accepted (counted as duplicate rows),
    different content (upstream changed meanwhile) is kept and the new batch takes the next
    number. Bronze is never overwritten, no record is lost, and a line already landed at the
    since boundary is not landed again (counted as a duplicate).
    """
    if state is None:
        state = await load_pull_state(store, options.agency_id, options.source_id)
    checkpoint, since = read_from(state, options)
    run = _Run(ctx, store, options, state, _Marks.of(state, options, since))
    lines: list[bytes] = []
    cursor = checkpoint
    with ctx.span("ingest", resumed=checkpoint is not None, since=since or ""):
        async for batch in source.batches(options.agency_id, checkpoint):
            for record in batch.records:
                line = record_line(record)
                if run.marks.landed_before(record, line):
                    run.skipped += 1
                    continue
                lines.append(line)
            cursor = batch.checkpoint
            if len(lines) >= options.records_per_part:
                await run.commit(lines, cursor)
                lines = []
        if lines:
            await run.commit(lines, cursor)
        await run.finish(cursor)
    partition = partition_path(options.agency_id, options.day)
    summary: dict[str, Any] = {
        "dt": options.day,
        "bronze": f"{BRONZE_PREFIX}{partition}/part-{options.source_id}-*.ndjson",
        "parts written": len(run.parts),
        "parts already there (resumed)": run.recovered,
        "resumed from": checkpoint or "the start",
        "checkpoint": options.checkpoint_key + ("" if run.written_state else " (unchanged)"),
        "records in this pull": run.state.records,
    }
    if options.since_field is not None:
        summary["changed since"] = f"{options.since_field} >= {since}" if since else "(all)"
        summary["already landed (skipped)"] = run.skipped
    if ctx.dry_run:
        summary["note"] = "dry run: no part or checkpoint was written"
    counts = run.counts + Counts(rows_in=run.skipped, rows_duplicate=run.skipped)
    return JobOutcome(counts=counts, artifacts=tuple(run.parts), summary=summary)


@attrs.define
class _Marks:
    """The since boundary of a pull: what to skip, and the high-water mark of what landed."""

    field: str | None
    since: str | None
    skip: frozenset[str]
    high_water: str | None
    high_us: int | None
    boundary: set[str]

    @classmethod
    def of(cls, state: IngestState, options: IngestOptions, since: str | None) -> _Marks:
        # A new pull skips the lines the last one landed at its high-water mark (= this since).
        skip = state.since_seen if not state.complete else state.boundary
        high = state.high_water
        return cls(
            field=options.since_field,
            since=since,
            skip=frozenset(skip) if options.since_field else frozenset(),
            high_water=high,
            high_us=_instant(high),
            boundary=set(state.boundary),
        )

    def landed_before(self, record: Mapping[str, Any], line: bytes) -> bool:
        """True if line was landed by an earlier pull at the boundary; else note its value."""
        if self.field is None:
            return False
        digest = hashlib.sha256(line).hexdigest()[:32]
        if digest in self.skip:
            return True
        value = None if raw_text(record) is not None else record.get(self.field)
        instant = _instant(value)
        if instant is not None:
            if self.high_us is None or instant > self.high_us:
                self.high_water, self.high_us, self.boundary = value, instant, {digest}
            elif instant == self.high_us:
                self.boundary.add(digest)
        return False

    def into(self, state: IngestState) -> IngestState:
        if self.field is None:
            return state
        return attrs.evolve(
            state,
            since=self.since,
            since_seen=tuple(sorted(self.skip)),
            high_water=self.high_water,
            boundary=tuple(sorted(self.boundary)),
        )


def _instant(value: object) -> int | None:
    return parse_iso_us(value.strip()) if isinstance(value, str) else None


@attrs.define
class _Run:
    ctx: RunContext
    store: ObjectStore
    options: IngestOptions
    loaded: IngestState
    marks: _Marks
    state: IngestState = attrs.field(init=False)
    counts: Counts = Counts()
    parts: list[str] = attrs.field(factory=list)
    recovered: int = 0
    skipped: int = 0
    written_state: bool = False

    def __attrs_post_init__(self) -> None:
        loaded = self.loaded
        # A new pull (the last one finished) counts its own records, into this run's dt.
        self.state = attrs.evolve(
            loaded, records=0 if loaded.complete else loaded.records, day=self.options.day
        )

    async def commit(self, lines: list[bytes], cursor: str | None) -> None:
        """Make the part durable, then the state after it, then its ledger row (so a run that
        fails later still reports, per part, what it wrote)."""
        body = b"".join(line + b"\n" for line in lines)
        rows = len(lines)
        number = self.state.next_part
        while True:
            key = self.options.part_key(number)
            if await self.store.put_if_absent(key, body):
                self.parts.append(key)
                status = PartitionStatus.PUBLISHED
                counts = Counts(rows, rows, 0, 0, len(body), len(body))
                break
            if await stored_equals(self.store, key, body):
                self.recovered += 1
                status = PartitionStatus.SKIPPED
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
        self.state = self.marks.into(
            attrs.evolve(
                self.state,
                cursor=cursor,
                next_part=number + 1,
                records=self.state.records + rows,
                complete=False,
                run_id=self.ctx.run_id,
            )
        )
        await self.store.put(self.options.checkpoint_key, dump_state(self.state))
        self.written_state = True
        self.counts += counts
        since = f"since {self.marks.since}:" if self.marks.since else ""
        await self.ctx.record_partition(
            PartitionRecord(
                run_id=self.ctx.run_id,
                job=self.ctx.job,
                partition=key.removeprefix(BRONZE_PREFIX),
                input_fingerprint=f"{self.options.source_id}:{since}{started_from}..{cursor}",
                counts=counts,
                agency_id=self.options.agency_id,
                status=PartitionStatus.DRY_RUN if self.ctx.dry_run else status,
                artifacts=(key,),
            )
        )
        self.ctx.progress(f"{self.ctx.job}: {self.state.records:,} records, part {number}")

    async def finish(self, cursor: str | None) -> None:
        """Mark the pull complete at cursor; write the state only if that changes it (a run
        that found nothing new writes nothing). In since mode the next pull starts afresh from
        the high-water mark: no cursor is kept."""
        cursor = None if self.options.since_field else cursor
        # Nothing landed: only the cursor and completeness can have moved.
        base = self.marks.into(self.state) if self.written_state else self.loaded
        final = attrs.evolve(base, cursor=cursor, complete=True, run_id=self.ctx.run_id)
        if attrs.evolve(final, run_id=None) == attrs.evolve(self.loaded, run_id=None):
            return
        self.state = final
        await self.store.put(self.options.checkpoint_key, dump_state(final))
        self.written_state = True
