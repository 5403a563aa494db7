"""What a replay re-runs: an agency's current dead-letter rows, grouped by bronze line, and how
supplied corrections map onto them."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping

import attrs
import orjson
from etl_core.errors import ConfigError, DataError
from etl_core.ports import ObjectStore

from data_pipeline.corrections import Correction, StoredCorrections, line_key
from data_pipeline.layout import DEADLETTER_PREFIX
from data_pipeline.publish import MANIFESTS, PartitionManifest


@attrs.frozen
class DeadRow:
    """One row of a current dead-letter file."""

    partition: str
    reason: str
    source: str
    raw: str
    run_id: str | None


@attrs.frozen
class Current:
    """An agency's current generations: partition -> newest manifest, and their dead letters."""

    manifests: Mapping[str, PartitionManifest]
    rows: tuple[DeadRow, ...]


async def current_dead_letters(store: ObjectStore, agency_id: int) -> Current:
    """Read every partition's newest manifest and the dead-letter files it lists (nothing else:
    files no manifest lists are leftovers). Raises DataError for an unreadable row."""
    newest: dict[str, str] = {}
    async for info in store.list(f"{MANIFESTS}/agency_id={agency_id}/"):
        if info.key.endswith(".json"):
            partition = info.key[len(MANIFESTS) + 1 : info.key.rindex("/")]
            newest[partition] = max(newest.get(partition, ""), info.key)
    manifests = {
        partition: PartitionManifest.from_json(key, await store.get(key))
        for partition, key in sorted(newest.items())
    }
    rows: list[DeadRow] = []
    for partition, manifest in manifests.items():
        for key in manifest.files:
            if key.startswith(DEADLETTER_PREFIX):
                rows.extend(_rows(partition, key, await store.get(key)))
    return Current(manifests, tuple(rows))


def _rows(partition: str, key: str, body: bytes) -> Iterable[DeadRow]:
    for line_no, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            yield DeadRow(partition, row["reason"], row["source"], row["raw"], row.get("run_id"))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{key}:{line_no}: not a dead-letter row") from None


@attrs.frozen
class Group:
    """Selected dead-letter rows that show the same text from the same bronze file."""

    partition: str
    source: str
    shown: str  # the raw text the rows show (a correction's text if one was applied)
    reason: str
    count: int
    keys: tuple[str, ...]  # original-line keys whose lines read as `shown` today


def group_rows(rows: Iterable[DeadRow], stored: StoredCorrections) -> tuple[Group, ...]:
    """Group rows by (partition, source, raw, reason), in first-seen order.

    A shown text stands for the original lines a stored correction replaced by it, or else for
    the original line of that very text.
    """
    counts = collections.Counter((r.partition, r.source, r.raw, r.reason) for r in rows)
    groups = []
    for (partition, source, shown, reason), count in counts.items():
        keys = stored.replaced_by(source, shown) or (line_key(shown),)
        groups.append(Group(partition, source, shown, reason, count, keys))
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
