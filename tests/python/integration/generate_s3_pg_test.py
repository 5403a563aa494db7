"""The generate job through the real adapters: S3 (moto) for the data, PostgreSQL for history."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import RunRecord, RunStatus
from jobs import generate


@pytest.fixture()
def s3_endpoint(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # The S3 adapter takes its endpoint from the standard AWS chain, like in production.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    return moto_url


async def _runs(url: str) -> list[RunRecord]:
    async with open_run_history(url, every_history()) as history:
        return await history.list_runs()


def _keys(s3: Any, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


async def test_generate_to_s3_with_a_postgres_history(
    s3_endpoint: str, s3: Any, bucket: str, pg_dsn: str, pg_schema: str
) -> None:
    history = f"{pg_dsn}?schema={pg_schema}"
    argv = ["--records", "300", "--files", "3", "--out", f"s3://{bucket}/ref",
            "--history", history, "--log-format", "json"]  # fmt: skip
    # entrypoint runs its own event loop; keep it off this test's loop.
    code = await asyncio.to_thread(generate.entrypoint, argv)
    assert code == 0
    keys = _keys(s3, bucket)
    assert "ref/manifest.json" in keys
    assert "ref/bronze/agency_id=1/dt=2024-01-08/part-0.ndjson" in keys
    manifest = json.loads(s3.get_object(Bucket=bucket, Key="ref/manifest.json")["Body"].read())
    [run] = await _runs(history)
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts.rows_in == manifest["input_rows"] == 300
    assert run.trace_id is not None
    assert run.parameters["out"] == f"s3://{bucket}/ref"


async def test_held_postgres_lease_exits_75_and_writes_nothing(
    s3_endpoint: str, s3: Any, bucket: str, pg_dsn: str, pg_schema: str
) -> None:
    history = f"{pg_dsn}?schema={pg_schema}"
    out = f"s3://{bucket}/ref"
    argv = ["--records", "100", "--out", out, "--history", history, "--log-format", "json"]
    async with open_run_history(
        history, every_history()
    ) as runs:  # held by a live session meanwhile
        await runs.migrate()
        assert await runs.acquire(f"generate/out={out}", "other", dt.timedelta(hours=1))
        assert await asyncio.to_thread(generate.entrypoint, argv) == 75
    assert _keys(s3, bucket) == []
    assert await _runs(history) == []
