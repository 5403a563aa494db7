"""Follow a replay's bronze -> silver pass and decide, row by row, where each replayed line went."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping

import attrs
from etl_core.errors import InvariantViolation
from etl_core.model import Counts
from etl_core.ports import ObjectStore

from data_pipeline.corrected_bronze import CorrectedBronze
from data_pipeline.corrections import StoredCorrections
from data_pipeline.layout import BRONZE_PREFIX
from data_pipeline.replay_select import Group
from data_pipeline.transform import FileResult

Winner = tuple[int, str, int]  # (updated_us, source, line_no): the Deduper's order


def watching_view(
    bronze: ObjectStore, stored: StoredCorrections, groups: Iterable[Group]
) -> CorrectedBronze:
    """bronze with the stored corrections, recording the line numbers of the groups' lines."""
    watch: dict[str, set[str]] = {}
    for group in groups:
        watch.setdefault(BRONZE_PREFIX + group.source, set()).update(group.keys)
    frozen = {key: frozenset(keys) for key, keys in watch.items()}
    return CorrectedBronze(bronze, stored.bronze_fixes(), watch=frozen)


@attrs.define
class Tracker:
    """PromoteOptions.on_file: keeps, for the record_ids the replayed lines carry, the winner by
    the Deduper's own order, and what the transform made of each watched line."""

    view: CorrectedBronze
    record_ids: frozenset[str]
    files: int = 0
    winners: dict[str, Winner] = attrs.field(factory=dict)
    valid_at: dict[tuple[str, int], tuple[str, int]] = attrs.field(factory=dict)
    reasons: dict[tuple[str, str], str] = attrs.field(factory=dict)  # (source, raw) -> reason

    def __call__(self, result: FileResult) -> None:
        self.files += 1
        key = BRONZE_PREFIX + result.source
        watched = {n for (k, _), lines in self.view.found.items() if k == key for n in lines}
        winners, ids = self.winners, self.record_ids
        for row in result.valid_rows:
            if row.record_id in ids:
                candidate = (row.updated_us, result.source, row.line_no)
                if row.record_id not in winners or candidate > winners[row.record_id]:
                    winners[row.record_id] = candidate
            if row.line_no in watched:
                self.valid_at[(result.source, row.line_no)] = (row.record_id, row.updated_us)
        if watched:
            self.reasons.update(((result.source, d.raw), d.reason) for d in result.dead_letters)


@attrs.define
class Tally:
    """Where one partition's replayed rows went: rows_in = rows_out + duplicates + dead letters."""

    counts: Counts = Counts()
    reasons: collections.Counter[str] = attrs.field(factory=collections.Counter)
    missing: int = 0  # selected rows whose line is no longer in bronze (not replayed)

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


def classify(
    groups: Iterable[Group], tracker: Tracker, texts: Mapping[tuple[str, str], str]
) -> dict[str, Tally]:
    """Per partition: each replayed line is silver (it won its record_id), a duplicate (it lost),
    or dead-lettered again (with the transform's reason). texts: (source, key) -> the line."""
    tallies: dict[str, Tally] = {}
    for group in groups:
        tally = tallies.setdefault(group.partition, Tally())
        bronze_key = BRONZE_PREFIX + group.source
        at = {n: k for k in group.keys for n in tracker.view.found.get((bronze_key, k), [])}
        lines = sorted(at)[: group.count]
        tally.missing += group.count - len(lines)
        for line_no in lines:
            hit = tracker.valid_at.get((group.source, line_no))
            if hit is None:
                text = texts[(group.source, at[line_no])]
                tally.add(dead=tracker.reasons.get((group.source, text), group.reason))
                continue
            record_id, updated_us = hit
            winner = tracker.winners.get(record_id)
            if winner is None:
                raise InvariantViolation(
                    f"{group.source}:{line_no}: replayed record {record_id} was not followed"
                )
            won = winner == (updated_us, group.source, line_no)
            tally.add(out=won, duplicate=not won)
    return tallies
