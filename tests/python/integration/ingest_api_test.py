"""ingest_api as a subprocess against a real HTTP API on loopback that fails mid-way, then heals."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from data_pipeline.workload import WorkloadOptions, iter_workload_files
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import RunRecord

# Imported, not only run: dependency inference then ships the job with this test.
from jobs import ingest_api  # noqa: F401

from integration.cli_support import cli_async
from integration.flaky_api import FlakyApiServer
from integration.http_support import TOKEN

AGENCY = 3
DAY = "2024-05-01"
TOKEN_ENV = "ETL_TEST_INGEST_TOKEN"


@functools.cache
def _records() -> list[dict[str, Any]]:
    """The agency's workload rows that are JSON objects (an API serves nothing else)."""
    files = iter_workload_files(WorkloadOptions(records=600, files=4, agencies=2, seed=21))
    records = []
    for key, body in files:
        if key.startswith(f"bronze/agency_id={AGENCY - 2}/"):  # agencies 1, 2: take agency 1's
            for line in body.splitlines():
                try:
                    records.append({**json.loads(line), "agency_id": AGENCY})
                except ValueError:
                    continue
    return records


@pytest.fixture()
async def api() -> AsyncIterator[FlakyApiServer]:
    server = FlakyApiServer(records={AGENCY: _records()}, page_size=7)
    await server.start()
    yield server
    await server.stop()


def _bronze(out: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for part in sorted((out / f"bronze/agency_id={AGENCY}").rglob("*.ndjson"))
        for line in part.read_text().splitlines()
    ]


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


async def _runs(history: str) -> list[RunRecord]:
    async with open_run_history(history) as runs:
        return await runs.list_runs(job="ingest_api")


@pytest.mark.parametrize("outage", ["drop", "status"])
async def test_an_interrupted_ingestion_resumes_and_lands_every_record_exactly_once(
    tmp_path: Path, api: FlakyApiServer, outage: str
) -> None:
    out, history = tmp_path / "out", f"sqlite:///{tmp_path}/history.sqlite3"

    async def run(*extra: str) -> Any:
        return await cli_async(
            tmp_path, "run", "ingest_api", "--", "--agency-id", str(AGENCY),
            "--source", f"{api.url}/agencies/{{agency_id}}/cursor", "--paging", "cursor",
            "--records-path", "data", "--auth-env", TOKEN_ENV, "--batch-size", "20",
            "--store", f"file://{out}", "--history", history, "--log-format", "json", *extra,
            env={TOKEN_ENV: TOKEN},
        )  # fmt: skip

    # 1. The API answers 9 pages (63 records), then fails for good: a temporary failure.
    api.pages_before_outage, api.outage = 9, outage
    first = await run("--dt", DAY)

    assert first.returncode == 75, first.stderr
    landed = _bronze(out)
    assert landed == _records()[: len(landed)]
    assert 40 <= len(landed) <= 63  # whole parts only: 3 parts of 21 records
    [checkpoint] = (out / f"_checkpoints/ingest_api/agency_id={AGENCY}").rglob("*.json")
    state = json.loads(checkpoint.read_text())
    assert (state["complete"], state["records"], state["cursor"]) == (
        False, len(landed), f"cursor:c{len(landed)}"
    )  # fmt: skip

    # 2. Healed: no --dt, so the unfinished pull's dt is resumed from its cursor.
    api.pages_before_outage = None
    requests_before = len(api.seen)
    second = await run()

    assert second.returncode == 0, second.stderr
    assert api.seen[requests_before] == f"/agencies/{AGENCY}/cursor?cursor=c{len(landed)}"
    assert _bronze(out) == _records()  # every record once, in order
    assert [p.parent.name for p in (out / "bronze").rglob("*.ndjson")] == [f"dt={DAY}"] * len(
        list((out / "bronze").rglob("*.ndjson"))
    )
    assert json.loads(checkpoint.read_text())["complete"] is True

    # 3. Nothing new upstream: nothing is asked of the API and nothing is written.
    snapshot, requests_before = _snapshot(out), len(api.seen)
    third = await run("--dt", DAY)

    assert third.returncode == 0, third.stderr
    assert _snapshot(out) == snapshot
    assert len(api.seen) == requests_before
    # The history tells the story; the token never shows anywhere.
    newest, middle, oldest = await _runs(history)
    assert (oldest.status.value, middle.status.value, newest.status.value) == (
        "failed", "succeeded", "succeeded"
    )  # fmt: skip
    assert oldest.error is not None
    assert "TemporaryFailure" in oldest.error
    assert oldest.counts.rows_out == len(landed)
    async with open_run_history(history) as runs:
        parts = await runs.partitions(oldest.run_id)
    assert [p.counts.rows_out for p in parts] == [21] * (len(landed) // 21)
    assert all(p.status == "published" and p.partition.startswith(f"agency_id={AGENCY}/dt={DAY}/")
               for p in parts)  # fmt: skip
    assert middle.counts.rows_out == len(_records()) - len(landed)
    assert newest.counts.rows_in == 0
    for result in (first, second, third):
        assert TOKEN not in result.stdout + result.stderr
    assert all(TOKEN not in json.dumps(r.parameters) for r in (oldest, middle, newest))


async def test_wrong_credentials_fail_the_run_without_retrying(
    tmp_path: Path, api: FlakyApiServer
) -> None:
    result = await cli_async(
        tmp_path, "run", "ingest_api", "--", "--agency-id", str(AGENCY),
        "--source", f"{api.url}/agencies/{{agency_id}}/cursor", "--auth-env", TOKEN_ENV,
        "--store", str(tmp_path / "out"), "--history", f"sqlite:///{tmp_path}/h.sqlite3",
        "--dt", DAY, "--log-format", "json",
        env={TOKEN_ENV: "Bearer wrong"},
    )  # fmt: skip

    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert len(api.seen) == 1
    assert not (tmp_path / "out" / "bronze").exists()
