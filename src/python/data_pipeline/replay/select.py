"""What a replay re-runs: an agency's current dead-letter rows (read from the dead-letter table),
grouped by bronze line text, and how supplied corrections map onto them."""

from __future__ import annotations

import collections
from collections.abc import Iterable

import attrs
from etl_core.errors import ConfigError
from etl_core.ports import SilverTables

from data_pipeline.bronze_to_silver.corrections import Correction, StoredCorrections, line_key
from data_pipeline.store.layout import partition_path

_COLUMNS = ("dt", "reason", "source", "line", "raw", "run_id", "raw_bytes")


@attrs.frozen
class DeadRow:
    """One committed row of the dead-letter table."""

    partition: str  # agency_id=<id>/dt=<day> (the source file's dt)
    reason: str
    source: str  # relative to bronze/
    raw: str
    run_id: str | None
    line: int | None = None  # 1-based line in source
    raw_bytes: bytes | None = None  # the line's exact bytes where raw cannot give them back


async def current_dead_letters(
    tables: SilverTables, agency_id: int, fold: int
) -> tuple[DeadRow, ...]:
    """The agency's dead-letter rows as silver's fold `fold` left them, by source and line. A
    later fold whose dead letters committed but whose silver did not (a run killed between the
    two) is not current: its rows replaced those a replay must select."""
    if await tables.deadletter.version(agency_id) > fold:
        table = await tables.deadletter.read_fold(agency_id, fold)
    else:
        table = await tables.deadletter.read(agency_id)
    if table is None or table.num_rows == 0:
        return ()
    columns = [name for name in _COLUMNS if name in table.column_names]
    rows = [
        DeadRow(
            partition_path(agency_id, row["dt"].isoformat()),
            row["reason"],
            row["source"],
            row["raw"] or "",
            row["run_id"],
            row["line"],
            row.get("raw_bytes"),
        )
        for row in table.select(columns).to_pylist()
    ]
    return tuple(sorted(rows, key=lambda row: (row.source, row.line or 0, row.raw)))


@attrs.frozen
class Group:
    """Selected dead-letter rows that show the same text from the same bronze file."""

    partition: str
    source: str
    shown: str  # the raw text the rows show (a correction's text if one was applied)
    reason: str
    lines: tuple[int | None, ...]  # the rows' lines in source
    keys: tuple[str, ...]  # original-line keys whose lines read as `shown` today
    # The exact bytes every row of the group carries where `shown` cannot give them back (not
    # UTF-8); None when shown is exact, or the rows' bytes differ or are unknown.
    raw_bytes: bytes | None = None

    @property
    def count(self) -> int:
        return len(self.lines)


def group_rows(rows: Iterable[DeadRow], stored: StoredCorrections) -> tuple[Group, ...]:
    """Group rows by (partition, source, raw, reason), in first-seen order.

    A shown text stands for the original lines a stored correction replaced by it, or else for
    the original line of that very text.
    """
    lines: dict[tuple[str, str, str, str], list[int | None]] = collections.defaultdict(list)
    exact: dict[tuple[str, str, str, str], set[bytes | None]] = collections.defaultdict(set)
    for r in rows:
        lines[(r.partition, r.source, r.raw, r.reason)].append(r.line)
        exact[(r.partition, r.source, r.raw, r.reason)].add(r.raw_bytes)
    groups = []
    for place, at in lines.items():
        partition, source, shown, reason = place
        keys = stored.replaced_by(source, shown) or (line_key(shown),)
        found = exact[place]
        raw_bytes = next(iter(found)) if len(found) == 1 else None
        groups.append(Group(partition, source, shown, reason, tuple(at), keys, raw_bytes))
    return tuple(groups)


@attrs.frozen
class Resolved:
    """Supplied corrections, resolved against the selection and what is stored."""

    new: tuple[Correction, ...]  # to store, keyed by the original line
    already: int  # supplied corrections that are stored as they are (a repeated replay)


def resolve_corrections(
    supplied: Iterable[Correction], groups: Iterable[Group], stored: StoredCorrections
) -> Resolved:
    """Key each supplied correction by the original line(s) it replaces.

    A correction names a line by the text a selected dead-letter row shows (then it applies to
    every original line of that group) or by its original text. One already stored as given
    counts as `already`. Raises ConfigError for corrections that match no selected row: they
    would change rows the replay does not cover. A later correction of the same line wins.
    """
    groups = tuple(groups)
    by_shown = {(g.source, line_key(g.shown)): g.keys for g in groups}
    originals = {(g.source, key) for g in groups for key in g.keys}
    new: dict[tuple[str, str], str] = {}
    already, unmatched = 0, []
    for correction in supplied:
        source, key = correction.source, correction.raw_sha256
        targets = by_shown.get((source, key)) or ((key,) if (source, key) in originals else ())
        if targets:
            changed = [t for t in targets if stored.replacement(source, t) != correction.corrected]
            new.update(((source, t), correction.corrected) for t in changed)
            already += not changed
        elif _stored_as_given(stored, correction):
            already += 1
        else:
            unmatched.append(correction)
    if unmatched:
        listed = "; ".join(f"{c.source} raw_sha256 {c.raw_sha256[:12]}..." for c in unmatched[:5])
        raise ConfigError(
            f"{len(unmatched)} correction(s) match no selected dead-letter row (another run's, "
            f"already in silver, or not a dead letter): {listed}"
        )
    return Resolved(tuple(Correction(s, k, text) for (s, k), text in new.items()), already)


def _stored_as_given(stored: StoredCorrections, correction: Correction) -> bool:
    """The correction's line (by original text, or by a text it was once replaced by) is stored
    with this very replacement."""
    source, key = correction.source, correction.raw_sha256
    keys = {key, *stored.once_replaced_by(source, key)}
    return any(stored.replacement(source, k) == correction.corrected for k in keys)
