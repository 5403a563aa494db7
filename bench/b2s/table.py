"""The benchmark's table: one line per run, throughput as a ratio to the fastest peer."""

from __future__ import annotations

from collections.abc import Sequence

from etl_core import text_table

from b2s.runs import FLOOR, Outcome

HEADER = (
    "implementation", "rows", "store", "wall s", "rows/s", "MB/s", "CPU s", "CPU us/row",
    "x floor CPU", "peak RSS MB", "invariant", "same output", "x fastest peer", "load1",
    "semantics", "notes",
)  # fmt: skip
_NUMERIC = frozenset(HEADER[i] for i in (1, 3, 4, 5, 6, 7, 8, 9, 12, 13))


def rows_of(outcomes: Sequence[Outcome]) -> list[tuple[str, ...]]:
    """Cells per run. "same output" compares silver and dead-letter digests with the first job
    run of the same size (or the first run, without one); the ratio is rows/s over the fastest
    peer's rows/s at the same size; "x floor CPU" is CPU per row over the parse floor's (when
    it ran at that size)."""
    lines: list[tuple[str, ...]] = []
    for outcome in outcomes:
        same_size = [o for o in outcomes if o.dataset.rows == outcome.dataset.rows]
        checked = [o for o in same_size if o.checked]
        reference = next((o for o in checked if o.implementation.startswith("job")), outcome)
        peers = [o for o in checked if not o.implementation.startswith("job")]
        fastest = min((o.usage.wall_s for o in peers), default=None)
        floor = next((o.usage.cpu_s for o in same_size if o.implementation == FLOOR), None)
        cpu_per_row = outcome.usage.cpu_s / outcome.dataset.rows
        wall = outcome.usage.wall_s
        problems = outcome.problems
        lines.append(
            (
                outcome.implementation,
                f"{outcome.dataset.rows:,}",
                outcome.store,
                f"{wall:.2f}",
                f"{outcome.dataset.rows / wall:,.0f}",
                f"{outcome.dataset.input_bytes / 1e6 / wall:.1f}",
                f"{outcome.usage.cpu_s:.2f}",
                f"{cpu_per_row * 1e6:.2f}",
                "-" if not floor else f"{outcome.usage.cpu_s / floor:.2f}",
                f"{outcome.usage.peak_rss_mb:.0f}",
                _invariant(outcome, problems),
                _same(outcome, reference),
                "-" if fastest is None or not outcome.checked else f"{fastest / wall:.2f}",
                f"{outcome.load:.1f}",
                outcome.semantics,
                outcome.note,
            )
        )
    return lines


def _invariant(outcome: Outcome, problems: list[str]) -> str:
    if not outcome.checked:
        return "-"
    return "ok" if not problems else "FAIL: " + "; ".join(problems)


def _same(outcome: Outcome, reference: Outcome) -> str:
    if not outcome.checked:
        return "-"
    if outcome is reference:
        return "ref"
    if outcome.readback.digest == reference.readback.digest:
        return "yes"
    silver = outcome.readback.silver_digest == reference.readback.silver_digest
    dead = outcome.readback.dead_digest == reference.readback.dead_digest
    return "no (" + ", ".join(n for n, ok in (("silver", silver), ("dead", dead)) if not ok) + ")"


def as_text(lines: Sequence[tuple[str, ...]]) -> str:
    """Aligned columns; numbers right-aligned."""
    return text_table.aligned(HEADER, lines, right=_NUMERIC)


def as_markdown(lines: Sequence[tuple[str, ...]]) -> str:
    return text_table.markdown(HEADER, lines, right=_NUMERIC)
