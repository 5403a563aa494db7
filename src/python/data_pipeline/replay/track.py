"""Follow a replay's bronze -> silver pass and decide, row by row, where each replayed line went:
silver, duplicate, or dead-letter again; and the replay's note of those verdicts."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import ClassVar

import attrs
import orjson
from etl_core import serde
from etl_core.errors import InvariantViolation
from etl_core.model import Counts, ObjectInfo
from etl_core.ports import ObjectStore
from etl_core.store_views import ReadOnlyObjectStore

from data_pipeline.bronze_to_silver.corrected_bronze import CorrectedBronze
from data_pipeline.bronze_to_silver.corrections import StoredCorrections
from data_pipeline.replay.select import Group
from data_pipeline.silver.file_transform import FileBatch
from data_pipeline.store.layout import BRONZE_PREFIX
from data_pipeline.store.ndjson import join_lines

Winner = tuple[int, str, int]  # (updated_us, source, line_no): the Deduper's order
SILVER, DUPLICATE, DEAD_LETTER = "silver", "duplicate", "dead_letter"
NOTES_PREFIX = "_replays"


@attrs.define
class FoldedBronze(ReadOnlyObjectStore):
    """Bronze listing only the objects silver's fold ledger covers (and anything outside
    bronze/): a replay rebuilds what has been folded in and leaves new bronze to the next
    bronze_to_silver run, which then counts it. Read-only."""

    VIEW: ClassVar[str] = "the replay's bronze view"

    folded: frozenset[str]

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """The stored listing without bronze objects no fold covers."""
        async for info in self.store.list(prefix):
            if info.key in self.folded or not info.key.startswith(BRONZE_PREFIX):
                yield info


def watching_view(
    bronze: ObjectStore,
    stored: StoredCorrections,
    groups: Iterable[Group],
    folded: frozenset[str],
) -> CorrectedBronze:
    """The folded bronze with the stored corrections, recording where the groups' lines are."""
    watch: dict[str, set[str]] = {}
    for group in groups:
        watch.setdefault(BRONZE_PREFIX + group.source, set()).update(group.keys)
    frozen = {key: frozenset(keys) for key, keys in watch.items()}
    return CorrectedBronze(FoldedBronze(bronze, folded), stored.bronze_fixes(), watch=frozen)


@attrs.define
class Tracker:
    """PromoteOptions.on_file: keeps, for the record_ids the replayed lines carry, the winner by
    the Deduper's own order, and what the transform made of each replayed (source, line)."""

    view: CorrectedBronze
    record_ids: frozenset[str]
    watched: Mapping[str, frozenset[int]]  # source -> the replayed lines
    files: int = 0
    winners: dict[str, Winner] = attrs.field(factory=dict)
    valid_at: dict[tuple[str, int], tuple[str, int]] = attrs.field(factory=dict)
    dead_at: dict[tuple[str, int], str] = attrs.field(factory=dict)  # -> reason

    @classmethod
    def of(
        cls, view: CorrectedBronze, groups: Iterable[Group], record_ids: frozenset[str]
    ) -> Tracker:
        watched: dict[str, set[int]] = {}
        for group in groups:
            watched.setdefault(group.source, set()).update(n for n in group.lines if n is not None)
        return cls(view, record_ids, {s: frozenset(lines) for s, lines in watched.items()})

    def __call__(self, result: FileBatch) -> None:
        self.files += 1
        source, lines = result.source, self.watched.get(result.source, frozenset())
        winners, ids = self.winners, self.record_ids
        for record_id, updated_us, line_no in result.valid_keys():
            if record_id in ids:
                candidate = (updated_us, source, line_no)
                if record_id not in winners or candidate > winners[record_id]:
                    winners[record_id] = candidate
            if line_no in lines:
                self.valid_at[(source, line_no)] = (record_id, updated_us)
        if lines:
            self.dead_at.update(
                ((source, d.line), d.reason) for d in result.dead_letters if d.line in lines
            )


@attrs.frozen
class Replayed:
    """Where one replayed bronze line went."""

    source: str
    line: int
    outcome: str  # SILVER, DUPLICATE or DEAD_LETTER
    record_id: str | None = None
    reason: str | None = None


@attrs.define
class Tally:
    """Where one partition's replayed rows went: rows_in = rows_out + duplicates + dead letters."""

    counts: Counts = Counts()
    reasons: collections.Counter[str] = attrs.field(factory=collections.Counter)
    missing: int = 0  # selected rows whose line is no longer in bronze (not replayed)
    rows: list[Replayed] = attrs.field(factory=list)

    def add(self, *, out: int = 0, duplicate: int = 0, dead: str | None = None) -> None:
        self.counts += Counts(
            rows_in=1, rows_out=out, rows_duplicate=duplicate, rows_dead_letter=dead is not None
        )
        if dead is not None:
            self.reasons[dead] += 1


def unchanged_tallies(groups: Iterable[Group]) -> dict[str, Tally]:
    """Every selected row still dead-lettered with its reason (the replay changed nothing)."""
    tallies: dict[str, Tally] = {}
    for group in groups:
        for _ in range(group.count):
            tallies.setdefault(group.partition, Tally()).add(dead=group.reason)
    return tallies


def classify(groups: Iterable[Group], tracker: Tracker) -> dict[str, Tally]:
    """Per partition: each replayed line is silver (it won its record_id), a duplicate (it lost),
    or dead-lettered again (with the transform's reason). A selected row whose line no longer
    reads as the text it showed (bronze changed since) is missing, not replayed."""
    tallies: dict[str, Tally] = {}
    for group in groups:
        tally = tallies.setdefault(group.partition, Tally())
        bronze_key = BRONZE_PREFIX + group.source
        present = {n for k in group.keys for n in tracker.view.found.get((bronze_key, k), ())}
        for line in group.lines:
            if line is None or line not in present:
                tally.missing += 1
                continue
            place = (group.source, line)
            hit = tracker.valid_at.get(place)
            if hit is None:
                reason = tracker.dead_at.get(place, group.reason)
                tally.add(dead=reason)
                tally.rows.append(Replayed(group.source, line, DEAD_LETTER, reason=reason))
                continue
            record_id, updated_us = hit
            winner = tracker.winners.get(record_id)
            if winner is None:
                raise InvariantViolation(
                    f"{group.source}:{line}: replayed record {record_id} was not followed"
                )
            won = winner == (updated_us, group.source, line)
            tally.add(out=won, duplicate=not won)
            tally.rows.append(Replayed(group.source, line, SILVER if won else DUPLICATE, record_id))
    return tallies


def note_key(agency_id: int, run_id: str) -> str:
    """_replays/agency_id=<id>/<run_id>.ndjson: where a replay notes the rows it replayed."""
    return f"{NOTES_PREFIX}/agency_id={agency_id}/{run_id}.ndjson"


def note_body(tallies: Mapping[str, Tally], run_id: str) -> bytes:
    """One NDJSON row per replayed line: {partition, source, line, outcome, record_id, reason,
    run_id}. Rows with outcome silver are in silver as (_source, _line) with _run_id = run_id."""
    return join_lines(
        orjson.dumps({"partition": partition, **serde.unstructure(row), "run_id": run_id})
        for partition, tally in sorted(tallies.items())
        for row in tally.rows
    )
