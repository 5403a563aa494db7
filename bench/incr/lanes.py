"""One implementation over one store ("lane"): its command, its tables, and a measured run.

Every run is a subprocess started by b2s.measure's launcher (wall, CPU of the process and its
reaped children, peak RSS of the largest), as in bronze_to_silver_bench. A failed run never
raises: its row carries the failure instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import attrs
from b2s import moto_s3
from b2s.measure import CommandFailed, Usage, run_measured
from b2s.runs import clean_env
from etl_core.adapters.sqlite_run_history import open_sqlite_run_history
from peers.incremental_common import storage_options

from incr.data import AGENCY_ID

# bench/ (or wherever peers/ was found: a test sandbox), the dlt venv's only PYTHONPATH entry.
_DLT_PEER = importlib.util.find_spec("peers.dlt_delta_incremental")
assert _DLT_PEER is not None
assert _DLT_PEER.origin is not None
BENCH: Final = Path(_DLT_PEER.origin).parents[1]
JOB: Final = "job"
POLARS: Final = "polars+deltalake"
DLT: Final = "dlt 1.31"
NOTES: Final = {
    JOB: "bronze_to_silver via jobs.cli, workers: job default",
    POLARS: "hand-written: own folded list, DeltaTable.merge; approx transform (polars_peer)",
    DLT: "merge/upsert, folded list in dlt state; newest-wins filtered before the load; "
    "approx transform (polars_peer)",
}


@attrs.frozen
class Run:
    """What one measured run gave: usage, or the failure (last line of its output)."""

    usage: Usage | None
    failure: str = ""
    load: float = 0.0


@attrs.frozen
class Lane:
    impl: str  # JOB / POLARS / DLT
    store: str  # a directory or s3://bucket
    work: Path  # logs and the job's run history
    env: Mapping[str, str]
    python: str = sys.executable  # the dlt peer's venv python for DLT
    unavailable: str = ""  # why this implementation cannot run here (its rows say so)

    @property
    def kind(self) -> str:
        return "s3" if self.store.startswith("s3://") else "local"

    @property
    def tables(self) -> tuple[str, str]:
        """(silver, dead letters) Delta table URIs."""
        base = f"{self.store.rstrip('/')}/dlt" if self.impl == DLT else self.store.rstrip("/")
        return f"{base}/silver", f"{base}/deadletter"

    @property
    def storage_options(self) -> dict[str, str]:
        return storage_options(self.store, self.env)

    def command(self) -> list[str]:
        agency = ["--agency-id", str(AGENCY_ID)]
        if self.impl == JOB:
            history = f"sqlite:///{self.work / 'history.sqlite3'}"
            job = [self.python, "-m", "jobs.cli", "run", "bronze_to_silver", "--", *agency]
            return [*job, "--store", self.store, "--history", history, "--log-format", "json"]
        if self.impl == POLARS:
            return [self.python, "-m", "peers.polars_delta_incremental", *agency, self.store]
        # The dlt venv sees bench/ only (peers.*), never this process's site-packages.
        isolated = ["env", f"PYTHONPATH={BENCH}", "RUNTIME__DLTHUB_TELEMETRY=false"]
        isolated += ["RUNTIME__LOG_LEVEL=WARNING"]
        return [*isolated, self.python, "-m", "peers.dlt_delta_incremental", *agency, self.store]

    def run(self, label: str) -> Run:
        load = os.getloadavg()[0]
        if self.unavailable:
            return Run(None, self.unavailable, load)
        logs = self.work / f"logs-{label}"
        try:
            usage = run_measured([self.command()], env=self.env, cwd=self.work, logs=logs)
        except CommandFailed as failed:
            return Run(None, _reason(str(failed)), load)
        return Run(usage, "", load)


def _reason(message: str) -> str:
    """The exit status and the last line of the command's output."""
    status = re.search(r"\bexit (-?\d+):", message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    tail = lines[-1][:200] if lines else ""
    return f"exit {status.group(1)}: {tail}" if status else tail or "failed"


def new_lane(
    impl: str,
    store: str,
    work: Path,
    *,
    endpoint: str | None = None,
    python: str | None = None,
    unavailable: str = "",
) -> Lane:
    """A lane with a fresh work directory (and, for the job, its run history) created untimed."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = clean_env()
    if store.startswith("s3://"):
        assert endpoint is not None
        env |= moto_s3.AWS_ENV | {"AWS_ENDPOINT_URL_S3": endpoint}
    if impl == JOB:
        # Created before the clock starts, as a production history already is.
        asyncio.run(_create_history(work / "history.sqlite3"))
    return Lane(impl, store, work, env, python or sys.executable, unavailable)


async def _create_history(path: Path) -> None:
    async with open_sqlite_run_history(path):
        pass
