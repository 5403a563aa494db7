"""ingest_api as a subprocess on the real backends (a paginated HTTP API and moto's S3 on
loopback, the history in PostgreSQL), SIGKILLed between a bronze part and its checkpoint: the
re-run lands every record exactly once, leaving bronze as an uninterrupted pull does.

No failpoint names these places, so a proxy in front of S3 holds the write where the run must
die (hold_proxy) and the test kills the process while the write hangs there."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

# Imported, not only run: dependency inference then ships the job with this test.
from jobs import ingest_api  # noqa: F401

from integration.cli_support import cli, cli_process
from integration.hold_proxy import HoldProxy
from integration.http_support import TOKEN, ApiServer
from integration.lake_support import objects, read_history, s3_env, until_lease_free
from integration.s3_support import Match

AGENCY = 3
DAY = "2024-05-01"
TOKEN_ENV = "ETL_TEST_INGEST_TOKEN"
RECORDS = [
    {"record_id": f"A003-{i:08d}", "agency_id": AGENCY, "status": "open",
     "updated_at": f"2024-05-01T00:{i // 60:02d}:{i % 60:02d}Z"}
    for i in range(40)
]  # fmt: skip
PER_PART = 10  # two API pages of 5 per bronze part: 4 parts


def _part(request: web.Request) -> bool:
    return request.method == "PUT" and "/bronze/" in request.path


def _checkpoint_after_a_part() -> Match:
    """Matches the checkpoint writes that follow a bronze part's write."""
    parts = 0

    def match(request: web.Request) -> bool:
        nonlocal parts
        if _part(request):
            parts += 1
        return parts > 0 and request.method == "PUT" and "/_checkpoints/" in request.path

    return match


# window -> (which requests, hold the nth of them, forward it to S3 first?)
WINDOWS: dict[str, tuple[Callable[[], Match], int, bool]] = {
    # A part is in S3; the checkpoint that counts it never reaches S3.
    "checkpoint-never-written": (_checkpoint_after_a_part, 1, False),
    # The second part reached S3, but the run died before hearing so (its checkpoint unwritten).
    "part-written-unacknowledged": (lambda: _part, 2, True),
}


@pytest.fixture()
async def api() -> AsyncIterator[ApiServer]:
    server = ApiServer(records={AGENCY: list(RECORDS)}, page_size=5)
    await server.start()
    yield server
    await server.stop()


def _argv(api: ApiServer, store: str, history: str) -> list[str]:
    return ["run", "ingest_api", "--", "--agency-id", str(AGENCY),
            "--source", f"{api.url}/agencies/{{agency_id}}/cursor", "--paging", "cursor",
            "--records-path", "data", "--auth-env", TOKEN_ENV, "--batch-size", str(PER_PART),
            "--dt", DAY, "--store", store, "--history", history,
            "--log-format", "json"]  # fmt: skip


def _bronze(moto_url: str, bucket: str) -> dict[str, bytes]:
    return objects(moto_url, bucket, f"lake/bronze/agency_id={AGENCY}/")


def _landed(bronze: dict[str, bytes]) -> list[dict[str, Any]]:
    """The records of the bronze parts, in key order."""
    return [json.loads(line) for _, body in sorted(bronze.items()) for line in body.splitlines()]


@pytest.mark.parametrize("window", WINDOWS)
async def test_an_ingestion_killed_between_a_part_and_its_checkpoint_lands_each_record_once(
    window: str, api: ApiServer, moto_url: str, s3: Any, bucket: str, pg_dsn: str,
    pg_schema: str, tmp_path: Path,
) -> None:  # fmt: skip
    store, history = f"s3://{bucket}/lake", f"{pg_dsn}?schema={pg_schema}"
    which, nth, forward = WINDOWS[window]
    proxy = HoldProxy(upstream=moto_url, hold=which(), nth=nth, forward=forward)
    await proxy.start()
    try:
        process = await cli_process(
            tmp_path, *_argv(api, store, history), output=tmp_path / "killed.log",
            env={**s3_env(proxy.url), TOKEN_ENV: TOKEN},
        )  # fmt: skip
        held = asyncio.ensure_future(proxy.held.wait())
        ended = asyncio.ensure_future(process.wait())
        await asyncio.wait({held, ended}, timeout=300, return_when=asyncio.FIRST_COMPLETED)
        log = (tmp_path / "killed.log").read_text()
        assert held.done(), f"the run never reached the hold:\n{log}"
        assert not ended.done(), f"the run ended before the hold:\n{log}"
        process.kill()
        assert await ended == -signal.SIGKILL, log
    finally:
        await proxy.stop()

    landed = _landed(_bronze(moto_url, bucket))
    assert len(landed) >= nth * PER_PART  # the parts before the hold, and the one it follows
    assert landed == RECORDS[: len(landed)]

    def run(target: str) -> subprocess.CompletedProcess[str]:
        return cli(tmp_path, *_argv(api, target, history), env={**s3_env(moto_url),
                   TOKEN_ENV: TOKEN})  # fmt: skip

    rerun = await asyncio.to_thread(until_lease_free, lambda: run(store))

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-3000:]
    bronze = _bronze(moto_url, bucket)
    assert _landed(bronze) == RECORDS  # every record once, in order
    # Bronze is what an uninterrupted pull of the same API writes, part for part.
    s3.create_bucket(Bucket=f"{bucket}-clean")
    clean = await asyncio.to_thread(
        run, f"s3://{bucket}-clean/lake"
    )  # its runs go to the same history, under the same lease: after the re-run, not beside it
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert {k.removeprefix("lake/"): v for k, v in bronze.items()} == {
        k.removeprefix("lake/"): v for k, v in _bronze(moto_url, f"{bucket}-clean").items()
    }

    again = await asyncio.to_thread(run, store)

    assert again.returncode == 0, again.stderr[-3000:]
    assert _bronze(moto_url, bucket) == bronze  # the checkpoint is complete: nothing new lands
    runs = await read_history(history, "ingest_api")
    killed, resumed = runs[0][0], runs[1][0]
    assert (killed.status.value, (killed.error or "")[:5]) == ("failed", "died:")
    assert resumed.status.value == "succeeded"
    assert all(r.counts.balanced for r, _ in runs)
    # Every part of the pull is named by a partition row of the killed run or its re-run.
    named = {a for _, partitions in runs[:2] for p in partitions for a in p.artifacts}
    assert {k.removeprefix("lake/") for k in bronze} <= named
