"""Read a run history back by URL, for tests that ran a job and check what it recorded.

One place instead of a copy per test module. Synchronous: the tests that use it are not async.
"""

from __future__ import annotations

import asyncio

import attrs

from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import PartitionRecord, RunRecord


@attrs.frozen
class Recorded:
    """Runs newest first (as `data-pipeline runs` lists them) and each run's partition rows."""

    runs: list[RunRecord]
    partitions: dict[str, list[PartitionRecord]]

    def run(self, run_id: str) -> RunRecord:
        """The run with that id. Raises KeyError."""
        for run in self.runs:
            if run.run_id == run_id:
                return run
        raise KeyError(run_id)

    def all_partitions(self) -> list[PartitionRecord]:
        """Every partition row, in the order of runs."""
        return [p for run in self.runs for p in self.partitions[run.run_id]]


def recorded(url: str, *, job: str | None = None, limit: int = 1000) -> Recorded:
    """What the history at url recorded (of job, if given)."""

    async def read() -> Recorded:
        async with open_run_history(url, every_history()) as history:
            runs = await history.list_runs(job=job, limit=limit)
            return Recorded(
                runs, {run.run_id: await history.partitions(run.run_id) for run in runs}
            )

    return asyncio.run(read())
