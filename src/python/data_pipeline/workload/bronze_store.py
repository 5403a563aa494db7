"""The reference workload as a bronze store in memory, for the data_pipeline tests."""

from __future__ import annotations

from etl_core.testing.fakes import FakeObjectStore

from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files


def workload_bronze(options: WorkloadOptions) -> FakeObjectStore:
    """A FakeObjectStore holding the workload's agencies.csv and bronze files (and manifest)."""
    return FakeObjectStore(dict(iter_workload_files(options)))
