"""ingest_api as a subprocess against a real HTTP API on loopback: it fails mid-way, then heals;
upstream changes between runs, and each run, on any day, lands only what is new."""

from __future__ import annotations

import functools
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files
from etl_core.adapters.every_history import every_history
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
    async with open_run_history(history, every_history()) as runs:
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
    [checkpoint] = (out / f"_checkpoints/ingest_api/agency_id={AGENCY}").rglob("state.json")
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

    # 3. Nothing new upstream: the API's last page is asked again, and nothing is written.
    snapshot, requests_before = _snapshot(out), len(api.seen)
    third = await run("--dt", DAY)

    assert third.returncode == 0, third.stderr
    assert _snapshot(out) == snapshot
    assert len(api.seen) == requests_before + 1
    # The history tells the story; the token never shows anywhere.
    newest, middle, oldest = await _runs(history)
    assert (oldest.status.value, middle.status.value, newest.status.value) == (
        "failed", "succeeded", "succeeded"
    )  # fmt: skip
    assert oldest.error is not None
    assert "TemporaryFailure" in oldest.error
    assert oldest.counts.rows_out == len(landed)
    async with open_run_history(history, every_history()) as runs:
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


def _by_day(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Bronze records per dt, parts in order."""
    days: dict[str, list[dict[str, Any]]] = {}
    for part in sorted((out / f"bronze/agency_id={AGENCY}").rglob("*.ndjson")):
        days.setdefault(part.parent.name.removeprefix("dt="), []).extend(
            json.loads(line) for line in part.read_text().splitlines()
        )
    return days


async def test_each_run_on_any_day_lands_only_what_was_appended_upstream_since_the_last(
    tmp_path: Path, api: FlakyApiServer
) -> None:
    out, history = tmp_path / "out", f"sqlite:///{tmp_path}/history.sqlite3"
    records = _records()
    first, appended, later = records[:40], records[40:50], records[50:]
    api.records[AGENCY] = list(first)

    async def run(day: str) -> Any:
        result = await cli_async(
            tmp_path, "run", "ingest_api", "--", "--agency-id", str(AGENCY),
            "--source", f"{api.url}/agencies/{{agency_id}}/cursor", "--auth-env", TOKEN_ENV,
            "--store", f"file://{out}", "--history", history, "--log-format", "json",
            "--dt", day, env={TOKEN_ENV: TOKEN},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result

    await run("2024-05-01")
    api.records[AGENCY] = [*first, *appended]
    await run("2024-05-01")  # the same day again: what was appended meanwhile
    snapshot, requests_before = _snapshot(out), len(api.seen)
    await run("2024-05-02")  # the next day, nothing new upstream
    assert _snapshot(out) == snapshot
    assert len(api.seen) == requests_before + 1  # the last page, asked again
    api.records[AGENCY] = [*first, *appended, *later]
    await run("2024-05-03")

    # Each record once, on the day it appeared upstream: yesterday's never move to today's dt.
    assert _by_day(out) == {"2024-05-01": first + appended, "2024-05-03": later}


async def test_with_since_param_each_day_lands_only_what_changed_and_no_line_twice(
    tmp_path: Path, api: FlakyApiServer
) -> None:
    out, history = tmp_path / "out", f"sqlite:///{tmp_path}/history.sqlite3"

    def record(n: int, updated_at: str, **fields: Any) -> dict[str, Any]:
        return {"record_id": f"A003-{n:08d}", "agency_id": AGENCY, "status": "open",
                "updated_at": updated_at, **fields}  # fmt: skip

    old = [record(n, f"2024-05-01T10:{n:02d}:00Z") for n in range(20)]
    # A bad row (an impossible occurred_at) updated last: the API serves it again on day 2
    # (updated_since is inclusive), and it must not reach bronze (nor dead letters) twice.
    bad = record(99, "2024-05-01T11:00:00Z", occurred_at="13/45/2024 25:61")
    api.records[AGENCY] = [*old, bad]

    async def run(day: str) -> Any:
        result = await cli_async(
            tmp_path, "run", "ingest_api", "--", "--agency-id", str(AGENCY),
            "--source", f"{api.url}/agencies/{{agency_id}}/cursor", "--auth-env", TOKEN_ENV,
            "--since-param", "updated_since", "--store", f"file://{out}", "--history", history,
            "--log-format", "json", "--dt", day, env={TOKEN_ENV: TOKEN},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result

    await run("2024-05-01")
    changed = [record(3, "2024-05-02T09:00:00Z", status="closed"),
               record(7, "2024-05-02T09:30:00Z", status="pending")]  # fmt: skip
    api.records[AGENCY] = [r for r in [*old, bad] if r["record_id"] not in
                           {c["record_id"] for c in changed}] + changed  # fmt: skip
    requests_before = len(api.seen)
    await run("2024-05-02")

    assert urllib.parse.unquote(api.seen[requests_before]) == (
        f"/agencies/{AGENCY}/cursor?updated_since=2024-05-01T11:00:00Z"
    )
    assert _by_day(out) == {"2024-05-01": [*old, bad], "2024-05-02": changed}

    # Same day, a later change upstream: fetched now, not tomorrow; the rest stays put.
    newer = record(12, "2024-05-02T15:00:00Z", status="closed")
    api.records[AGENCY] = [*api.records[AGENCY], newer]
    await run("2024-05-02")

    assert _by_day(out) == {"2024-05-01": [*old, bad], "2024-05-02": [*changed, newer]}
    runs = await _runs(history)
    assert [(r.counts.rows_out, r.counts.rows_duplicate) for r in runs] == [(1, 1), (2, 1), (21, 0)]
