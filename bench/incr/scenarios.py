"""The scenarios over one dataset: bronze arrives, every lane runs in turn, its tables are checked.

In order: (a) the full build over D days, (b) the run after the held-back day arrives, (c) a
re-run with nothing new. Out of order: the newest day first, then the other D days. After each
run the lane's tables are read back and compared with the reference of all bronze it has seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from incr import data
from incr.check import check_tables
from incr.data import Days
from incr.lanes import Lane
from incr.reference import Expected, Reference
from incr.table import Row

Progress = Callable[[Row], None]


@attrs.define
class Setup:
    """One dataset's bronze, its reference, and where the lanes' stores live."""

    days: Days
    label: str  # e.g. "30 d x 20,000"
    endpoint: str | None = None  # moto, for s3:// lanes
    progress: Progress = print
    reference: Reference = attrs.field(init=False)
    _expected: dict[tuple[str, ...], Expected] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        self.reference = Reference(self.days.dataset.root)

    def expected(self, keys: tuple[str, ...]) -> Expected:
        key = tuple(sorted(keys))
        if key not in self._expected:
            self._expected = {key: self.reference.expected(key)}  # one at a time: memory
            if key == tuple(sorted(self.days.files)):
                self._agrees_with_manifest(self._expected[key])
        return self._expected[key]

    def _agrees_with_manifest(self, expected: Expected) -> None:
        """The reference of all bronze against the generator's own counts (manifest.json)."""
        manifest = self.days.dataset.manifest
        have = (expected.rows_in, expected.silver.height, expected.dead.height)
        want = (manifest["input_rows"], manifest["silver_rows"], manifest["dead_letter_rows"])
        if have != want:
            raise AssertionError(f"reference (rows in, silver, dead) {have} != manifest {want}")

    def open_store(self, lane: Lane) -> None:
        """A fresh store for the lane with agencies.csv and no bronze (untimed)."""
        if lane.kind == "s3":
            assert self.endpoint is not None
            data.new_bucket(self.endpoint, lane.store.removeprefix("s3://"), self.days)
        else:
            data.new_store(Path(lane.store), self.days)

    def arrive(self, lane: Lane, keys: tuple[str, ...]) -> None:
        if lane.kind == "s3":
            assert self.endpoint is not None
            data.upload(self.endpoint, lane.store.removeprefix("s3://"), self.days, keys)
        else:
            data.arrive(Path(lane.store), self.days, keys)

    def step(
        self,
        lanes: Sequence[Lane],
        arrival: str,
        scenario: str,
        seen: tuple[str, ...],
        new: tuple[str, ...],
    ) -> list[Row]:
        """New files arrive in every lane's store, then each lane runs and is checked against
        the reference of `seen` (every file in its store now)."""
        for lane in lanes:
            self.arrive(lane, new)
        self.reference.prepare(seen)  # before any run: its CPU never overlaps a measured run
        expected = self.expected(seen)
        new_rows = self.days.rows(new)
        rows = []
        for lane in lanes:
            run = lane.run(scenario.split(")")[0])
            check = None
            if run.usage is not None:
                silver, dead = lane.tables
                check = check_tables(silver, dead, expected, lane.storage_options)
            row = Row(self.label, arrival, scenario, lane, new_rows, run, check)
            self.progress(row)
            rows.append(row)
        return rows


def in_order(setup: Setup, lanes: Sequence[Lane], *, rerun: bool = True) -> list[Row]:
    days = setup.days
    for lane in lanes:
        setup.open_store(lane)
    order = "in order"
    rows = setup.step(lanes, order, f"a) full build, {days.days} d", days.first, days.first)
    rows += setup.step(lanes, order, "b) +1 day", days.files, days.held_back)
    if rerun:
        rows += setup.step(lanes, order, "c) nothing new", days.files, ())
    return rows


def out_of_order(setup: Setup, lanes: Sequence[Lane]) -> list[Row]:
    days = setup.days
    for lane in lanes:
        setup.open_store(lane)
    order = "out of order"
    rows = setup.step(lanes, order, "o1) newest day first", days.held_back, days.held_back)
    rows += setup.step(lanes, order, f"o2) then the other {days.days} d", days.files, days.first)
    return rows
