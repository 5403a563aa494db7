"""Test support for the jobs on the real backends: bronze and lakes in moto's S3, histories in
PostgreSQL; what any Delta reader sees of a lake, and what the history says of the runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from etl_core.adapters.delta_tables import storage_options, table_uri
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import PartitionRecord, RunRecord

from integration.cli_support import cli

Rows = tuple[tuple[Any, ...], ...]
View = tuple[Rows, Rows]
"""(silver rows, dead-letter rows) of one agency, each sorted, the writing run's id left out."""


def s3_env(moto_url: str) -> dict[str, str]:
    """The endpoint as production passes it: the standard AWS variable."""
    return {"AWS_ENDPOINT_URL_S3": moto_url}


def _client(moto_url: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")


def new_bucket(moto_url: str, stem: str) -> str:
    """A fresh, empty bucket; its name."""
    name = f"{stem}-{uuid.uuid4().hex[:12]}"
    _client(moto_url).create_bucket(Bucket=name)
    return name


def copy_bucket(moto_url: str, source: str, target: str) -> None:
    """Every object of source into target under the same key (a lake's keys are relative)."""
    s3 = _client(moto_url)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source):
        for item in page.get("Contents", []):
            s3.copy_object(
                Bucket=target, Key=item["Key"], CopySource={"Bucket": source, "Key": item["Key"]}
            )


def objects(moto_url: str, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """key -> body of every object under prefix."""
    s3 = _client(moto_url)
    found: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def generate_bronze(root: Path, moto_url: str, out: str, *argv: str) -> None:
    """The generate job's bronze (and agencies.csv) at the store URL out."""
    generated = cli(root, "run", "generate", "--", *argv, "--out", out,
                    "--history", f"sqlite:///{root}/generate.sqlite3",
                    env=s3_env(moto_url))  # fmt: skip
    assert generated.returncode == 0, generated.stderr[-3000:]


def committed_rows(store: str, moto_url: str, name: str, agency_id: int) -> list[dict[str, Any]]:
    """The agency's committed rows of table name, as any Delta reader sees them."""
    options = storage_options(store, {**os.environ, **s3_env(moto_url)})
    try:
        table = DeltaTable(table_uri(store, name), storage_options=options)
    except TableNotFoundError:  # no table yet: nothing committed
        return []
    rows: list[dict[str, Any]] = table.to_pyarrow_table(
        filters=[("agency_id", "=", agency_id)]
    ).to_pylist()
    return rows


def table_rows(store: str, moto_url: str, name: str, agency_id: int, drop: str) -> Rows:
    """committed_rows, sorted, without the column drop (the writing run's id: a re-run writes
    the same rows under another id)."""
    found = committed_rows(store, moto_url, name, agency_id)
    return tuple(sorted(tuple(v for k, v in sorted(r.items()) if k != drop) for r in found))


def lake_view(store: str, moto_url: str, agency_id: int) -> View:
    """What readers see of the agency: silver and dead letters."""
    return (
        table_rows(store, moto_url, "silver", agency_id, "_run_id"),
        table_rows(store, moto_url, "deadletter", agency_id, "run_id"),
    )


def until_lease_free(
    run: Callable[[], subprocess.CompletedProcess[str]],
) -> subprocess.CompletedProcess[str]:
    """run() again while it exits 75 (a killed run's lease not yet free); its last result."""
    deadline = time.monotonic() + 120  # a bound for failing, not a race
    while (result := run()).returncode == 75 and time.monotonic() < deadline:
        time.sleep(0.3)
    return result


async def read_history(
    history: str, job: str | None = None
) -> list[tuple[RunRecord, list[PartitionRecord]]]:
    """Runs (oldest first) with their partition rows, after reaping the dead as `data-pipeline
    runs` does: a killed run then shows as failed ("died"), not running."""
    async with open_run_history(history, every_history()) as runs:
        await runs.reap_dead()
        found = await runs.list_runs(job=job, limit=1000)
        return [(run, await runs.partitions(run.run_id)) for run in reversed(found)]


def history_of(
    history: str, job: str | None = None
) -> list[tuple[RunRecord, list[PartitionRecord]]]:
    """read_history for synchronous tests."""
    return asyncio.run(read_history(history, job))
