"""The incremental benchmark's table: one line per (scenario, implementation), ratios per scenario.

"x fastest peer" is the row's wall time over the fastest peer's (polars+deltalake or dlt) in the
same dataset, arrival order, scenario and store: 1.00 for that peer, above 1 slower.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from etl_core import text_table

from incr.check import Check
from incr.lanes import JOB, NOTES, Lane, Run

HEADER = (
    "data", "arrival", "scenario", "implementation", "store", "new rows", "wall s", "CPU s",
    "peak RSS MB", "x fastest peer", "check", "load1", "notes",
)  # fmt: skip
NUMERIC = {5, 6, 7, 8, 9, 11}


@attrs.frozen
class Row:
    data: str  # e.g. "30 d x 20,000"
    arrival: str  # in order / out of order
    scenario: str
    lane: Lane
    new_rows: int  # rows in the bronze files that arrived since the lane's previous run
    run: Run
    check: Check | None  # None when the run failed

    @property
    def group(self) -> tuple[str, str, str, str]:
        return (self.data, self.arrival, self.scenario, self.lane.kind)

    @property
    def ok(self) -> bool:
        return self.run.usage is not None and self.check is not None and self.check.exact

    @property
    def check_text(self) -> str:
        if self.run.usage is None:
            verb = "not run" if self.lane.unavailable else "run failed"
            return f"{verb}: {self.run.failure}"
        assert self.check is not None
        return self.check.text()


def cells(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    fastest: dict[tuple[str, str, str, str], float] = {}
    for row in rows:
        if row.lane.impl != JOB and row.run.usage is not None:
            wall = row.run.usage.wall_s
            fastest[row.group] = min(wall, fastest.get(row.group, wall))
    lines: list[tuple[str, ...]] = []
    for row in rows:
        usage, best = row.run.usage, fastest.get(row.group)
        ratio = "-" if usage is None or best is None else f"{usage.wall_s / best:.2f}"
        lines.append(
            (
                row.data,
                row.arrival,
                row.scenario,
                row.lane.impl,
                row.lane.kind,
                f"{row.new_rows:,}",
                "-" if usage is None else f"{usage.wall_s:.2f}",
                "-" if usage is None else f"{usage.cpu_s:.2f}",
                "-" if usage is None else f"{usage.peak_rss_mb:.0f}",
                ratio,
                row.check_text,
                f"{row.run.load:.1f}",
                NOTES[row.lane.impl],
            )
        )
    return lines


def as_markdown(lines: Sequence[tuple[str, ...]]) -> str:
    return text_table.markdown(HEADER, lines, right={HEADER[i] for i in NUMERIC})


def parse_markdown(text: str) -> list[dict[str, str]]:
    """The rows of a table written by as_markdown (for tests)."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    split = [[cell.strip() for cell in line.strip()[2:-2].split(" | ")] for line in lines]
    assert tuple(split[0]) == HEADER, split[0]
    return [dict(zip(HEADER, row, strict=True)) for row in split[2:]]
