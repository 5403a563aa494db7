"""The incremental benchmark's bronze: one agency, D+1 days generated, staged day by day.

Generated once per (days, rows per day) by the project's generator (`generate --records
(D+1)*R --files D+1 --agencies 1 --seed 7`, through b2s.dataset's cache). Each implementation
gets its own store holding agencies.csv and the bronze files of the days that have "arrived",
hard-linked from the dataset (no copies; a file is never modified in place), or uploaded to its
own bucket for S3.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import attrs
from b2s import moto_s3
from b2s.dataset import Dataset, ensure_dataset
from data_pipeline.workload.generate import AGENCIES_KEY, WorkloadOptions

AGENCY_ID = 1


@attrs.frozen
class Days:
    """A generated dataset of D+1 days; `files` in day order, the last one held back."""

    dataset: Dataset
    files: tuple[str, ...]  # keys relative to the dataset root: bronze/agency_id=1/dt=.../...

    @property
    def days(self) -> int:
        return len(self.files) - 1

    @property
    def first(self) -> tuple[str, ...]:
        """The D days of the full build."""
        return self.files[:-1]

    @property
    def held_back(self) -> tuple[str, ...]:
        """The day that arrives after the full build."""
        return self.files[-1:]

    def rows(self, keys: tuple[str, ...]) -> int:
        """Non-blank lines in those files: the rows they bring in."""
        return sum(_lines(self.dataset.root / key) for key in keys)


def _lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def ensure_days(days: int, rows_per_day: int, scratch: Path) -> Days:
    options = WorkloadOptions(records=(days + 1) * rows_per_day, files=days + 1, agencies=1)
    dataset, generated = ensure_dataset(options, scratch)
    files = tuple(sorted(p.relative_to(dataset.root).as_posix() for p in dataset.bronze_files))
    assert len(files) == days + 1, files
    state = "generated" if generated else "cached"
    size = f"{dataset.rows:,} rows, {dataset.input_bytes / 1e6:.1f} MB"
    what = f"{days}+1 days x {rows_per_day:,} rows ({size})"
    print(f"# {what}: {state} at {dataset.root}", flush=True)
    return Days(dataset, files)


def new_store(path: Path, days: Days) -> Path:
    """An empty store directory with agencies.csv (bronze arrives with `arrive`)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.link(days.dataset.root / AGENCIES_KEY, path / AGENCIES_KEY)
    return path


def arrive(store: Path, days: Days, keys: tuple[str, ...]) -> None:
    """Hard-link those bronze files into the store (a new directory entry, as an upload is)."""
    for key in keys:
        target = store / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(days.dataset.root / key, target)


def new_bucket(endpoint: str, bucket: str, days: Days) -> None:
    moto_s3.create_bucket(endpoint, bucket)
    upload(endpoint, bucket, days, (AGENCIES_KEY,))


def upload(endpoint: str, bucket: str, days: Days, keys: tuple[str, ...]) -> None:
    """Put those files of the dataset into the bucket under the same keys (untimed)."""
    with tempfile.TemporaryDirectory(prefix="incr-upload-") as staging:
        arrive(Path(staging), days, keys)
        moto_s3.upload_tree(Path(staging), endpoint, bucket)
