"""One measured run of an implementation over a dataset: the job (per agency) or a peer."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs
from etl_core.adapters.delta_tables import storage_options, table_uri
from etl_core.adapters.sqlite_run_history import open_sqlite_run_history

from b2s import moto_s3, native
from b2s.dataset import Dataset
from b2s.measure import Usage, run_measured
from b2s.readback import Readback, read_directory, read_tables

REPO: Final = Path(__file__).resolve().parents[2]
# The sources beside the bench in a checkout, then this process's own path (a test sandbox or
# PEX holds them there instead): the subprocesses import exactly what this process imports.
PYTHONPATH: Final = os.pathsep.join(
    [str(REPO / "src" / "python"), str(REPO / "bench"), *(p for p in sys.path if p)]
)


@attrs.frozen
class Outcome:
    """A measured run and what its output holds."""

    implementation: str
    dataset: Dataset
    store: str  # local / s3
    usage: Usage
    readback: Readback
    semantics: str  # exact / approx
    load: float  # 1-minute load average when the run started
    note: str = ""
    checked: bool = True  # False for the parse floor, which writes no output

    @property
    def problems(self) -> list[str]:
        return self.readback.problems(self.dataset.manifest) if self.checked else []


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: no ETL_* or AWS_* settings of the caller leak into a run (but
    the native scanner's library, where a checkout needs it named)."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": PYTHONPATH,
        "PYTHONHASHSEED": "0",
    }
    return {**base, **native.scanner_env(), **(extra or {})}


def run_job(
    dataset: Dataset,
    work: Path,
    *,
    store: str,
    batched: int = 0,
    backfill: int = 0,
    workers: int | None = None,
    at_once: int = 1,
    endpoint: str | None = None,
) -> Outcome:
    """bronze_to_silver once per agency through the CLI (a process each, as in production), or
    with batched=K the agencies dealt to K processes that run theirs one after another in-process
    (all K at once), or with backfill=K one `backfill --all-agencies --max-parallel K` over the
    dataset's whole date range (a full build); output read back through the Delta tables."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = clean_env()
    if store == "s3":
        assert endpoint is not None
        # A bucket of its own per run: a repeat into the last run's bucket would find silver
        # already built and measure an incremental run with nothing to do.
        name = f"silver-{dataset.rows}-{work.name}".lower().replace("_", "-")[:54]
        bucket = f"{name}-{os.urandom(4).hex()}"
        moto_s3.create_bucket(endpoint, bucket)
        store_url, bronze_url = f"s3://{bucket}", f"s3://bronze-{dataset.rows}"
        env |= moto_s3.AWS_ENV | {"AWS_ENDPOINT_URL_S3": endpoint}
    else:
        store_url, bronze_url = f"file://{work / 'store'}", f"file://{dataset.root}"
    history_url = f"sqlite:///{work / 'history.sqlite3'}"
    # Created and migrated before the clock starts, as a production history already is: runs
    # that open a fresh SQLite file at the same instant can fail with "database is locked".
    asyncio.run(_create_history(work / "history.sqlite3"))
    common = ["--bronze", bronze_url, "--store", store_url, "--history", history_url]
    common += ["--log-format", "json"]
    if workers is not None:
        common += ["--workers", str(workers)]
    agencies = [str(agency_id) for agency_id in dataset.agencies]
    commands: list[Sequence[str]]
    if backfill:
        first, last = dataset.days[0], dataset.days[-1]
        commands = [
            [sys.executable, "-m", "jobs.cli", "run", "backfill", "--", "--all-agencies",
             "--from", first, "--to", last, "--max-parallel", str(backfill), *common]
        ]  # fmt: skip
    elif batched:
        at_once = batched
        commands = [
            [
                sys.executable,
                "-m",
                "b2s.all_agencies",
                ",".join(agencies[k::batched]),
                "--",
                *common,
            ]
            for k in range(batched)
        ]
    else:
        job = [sys.executable, "-m", "jobs.cli", "run", "bronze_to_silver", "--"]
        commands = [[*job, "--agency-id", agency_id, *common] for agency_id in agencies]
    load = os.getloadavg()[0]
    server_cpu = _self_cpu()
    usage = run_measured(commands, env=env, cwd=work, logs=work / "logs", at_once=at_once)
    note = _job_note(len(commands), workers, at_once, batched, backfill)
    duplicates = asyncio.run(_duplicates(work / "history.sqlite3"))
    if store == "s3":
        note += f"; moto server CPU {_self_cpu() - server_cpu:.1f} s (not in CPU s)"
        options = storage_options(store_url, env)
    else:
        options = {}
    readback = read_tables(
        table_uri(store_url, "silver"), table_uri(store_url, "deadletter"), options, duplicates
    )
    if store != "s3":
        discard(work / "store")  # checked: ~0.4 GB a row at 1M; the logs stay
    name = f"job (batched x{batched})" if batched else "job"
    if backfill:
        name = f"job (backfill --max-parallel {backfill})"
    return Outcome(name, dataset, store, usage, readback, "exact", load, note)


def discard(path: Path) -> None:
    """Put a run's output aside, to delete when the benchmark ends (empty_trash). Deleting it
    at once would tax the next run: on ext4 without a journal (this machine's disk), creating
    files soon after many were deleted scans the recently freed inodes (`recently_deleted`),
    which measured ~0.5 s of a full build's CPU, all of it in its file and directory creation.
    """
    trash = path.parents[2] / ".trash"
    trash.mkdir(exist_ok=True)
    path.rename(trash / f"{path.parent.name}-{path.name}-{os.urandom(4).hex()}")


def empty_trash(runs: Path) -> None:
    """Delete what discard put aside under runs/ (the scratch's runs directory)."""
    shutil.rmtree(runs / ".trash", ignore_errors=True)


def _job_note(
    processes: int, workers: int | None, at_once: int, batched: int, backfill: int
) -> str:
    pool = f"--workers {workers}" if workers is not None else "workers: job default"
    if backfill:
        return f"one backfill process, agencies {backfill} at a time, {pool}"
    if batched:
        return f"agencies in-process, {processes} process(es) at once, {pool}"
    return f"{processes} processes, {at_once} at a time, {pool}"


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _create_history(path: Path) -> None:
    async with open_sqlite_run_history(path):
        pass


async def _duplicates(path: Path) -> int:
    """Rows displaced: each run's duplicates, plus each row a later fold updated (a run of more
    than one fold, ~64 MB of bronze each, merges later versions over rows its earlier folds
    inserted: silver holds the inserted rows, and every update displaced one of them)."""
    async with open_sqlite_run_history(path) as history:
        runs = await history.list_runs(job="bronze_to_silver", limit=100_000)
        return sum(run.counts.rows_duplicate + run.counts.rows_updated for run in runs)


def run_peer(dataset: Dataset, work: Path, *, module: str, semantics: str, note: str) -> Outcome:
    """`python -m peers.<module> STORE_DIR OUT_DIR` over the local dataset; output read back."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = work / "out"
    command = [sys.executable, "-m", f"peers.{module}", str(dataset.root), str(out)]
    load = os.getloadavg()[0]
    usage = run_measured([command], env=clean_env(), cwd=work, logs=work / "logs")
    counts = json.loads((work / "logs" / "0000.log").read_text().strip().splitlines()[-1])
    readback = read_directory(out, duplicates=int(counts["duplicates"]))
    discard(out)
    return Outcome(module, dataset, "local", usage, readback, semantics, load, note)


FLOOR: Final = "orjson parse only (floor)"


def run_floor(dataset: Dataset, work: Path) -> Outcome:
    """`python -m peers.parse_floor STORE_DIR OUT_DIR`: every line decoded, nothing written."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    command = [sys.executable, "-m", "peers.parse_floor", str(dataset.root), str(work / "out")]
    load = os.getloadavg()[0]
    usage = run_measured([command], env=clean_env(), cwd=work, logs=work / "logs")
    counts = json.loads((work / "logs" / "0000.log").read_text().strip().splitlines()[-1])
    if counts["rows_in"] != dataset.manifest["input_rows"]:
        raise RuntimeError(f"parse floor read {counts['rows_in']} rows, not the dataset's")
    note = f"1 process; {counts['decoded']:,} lines decoded, nothing validated or written"
    return Outcome(FLOOR, dataset, "local", usage, Readback(), "floor", load, note, checked=False)
