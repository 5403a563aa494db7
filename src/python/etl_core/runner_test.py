"""Tests for run_job: history rows, leases, heartbeats, exit codes, dry-run, interruptions."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest

from etl_core import clock, sigterm
from etl_core.adapters import run_histories
from etl_core.adapters.every_history import every_history
from etl_core.errors import ConfigError, RunHistoryError
from etl_core.model import Counts, PartitionRecord, RunRecord, RunStatus
from etl_core.runner import JobOutcome, RunContext
from etl_core.settings import CommonSettings
from etl_core.testing.fakes import FakeRunHistory, Lease
from etl_core.testing.run_wiring import run_job

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture()
def history(monkeypatch: pytest.MonkeyPatch) -> FakeRunHistory:
    """Every history URL opens this fake."""
    fake = FakeRunHistory()

    @asynccontextmanager
    async def opener(url: str, adapters: object) -> AsyncIterator[FakeRunHistory]:
        yield fake

    monkeypatch.setattr(run_histories, "open_run_history", opener)
    return fake


def _settings(**overrides: object) -> CommonSettings:
    values: dict[str, object] = {"agency_id": 10, "log_format": "json"}
    values.update(overrides)
    return CommonSettings(**values)  # type: ignore[arg-type]


def _outcome(**counts: int) -> JobOutcome:
    return JobOutcome(counts=Counts(**counts), artifacts=("manifest.json",), summary={"files": 2})


async def _balanced(ctx: RunContext) -> JobOutcome:
    return _outcome(rows_in=10, rows_out=8, rows_duplicate=1, rows_dead_letter=1, bytes_out=5)


def _only_run(history: FakeRunHistory) -> RunRecord:
    assert len(history.runs) == 1
    return next(iter(history.runs.values()))


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith("{")]


def test_successful_run_is_recorded_with_counts_and_identity(
    history: FakeRunHistory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code = run_job("demo", _settings(), _balanced, parameters={"records": 5}, code_version="v1.2.3")
    assert code == 0
    run = _only_run(history)
    assert UUID7.match(run.run_id)
    assert (run.job, run.agency_id, run.status) == ("demo", 10, RunStatus.SUCCEEDED)
    assert run.counts == Counts(
        rows_in=10, rows_out=8, rows_duplicate=1, rows_dead_letter=1, bytes_out=5
    )
    assert run.artifacts == ("manifest.json",)
    assert run.error is None
    assert run.trace_id is not None
    assert re.fullmatch(r"[0-9a-f]{32}", run.trace_id)
    assert run.host
    assert run.code_version == "v1.2.3"
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at
    assert run.parameters["records"] == 5
    assert run.parameters["store_url"] == "file://./.etl/store"
    assert history.leases == {}  # released
    out = capsys.readouterr().out
    assert f"demo run {run.run_id} succeeded" in out
    assert "rows: in 10  out 8  duplicate 1  dead-letter 1" in out
    assert "files: 2" in out


def test_given_run_id_is_used(history: FakeRunHistory) -> None:
    assert run_job("demo", _settings(run_id="my-run"), _balanced) == 0
    assert list(history.runs) == ["my-run"]


def test_a_reused_run_id_records_each_retry_as_a_numbered_attempt(
    history: FakeRunHistory, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fails(ctx: RunContext) -> JobOutcome:
        raise ConfigError("first attempt fails")

    assert run_job("demo", _settings(run_id="run-20260118-123"), fails) == 2
    capsys.readouterr()
    assert run_job("demo", _settings(run_id="run-20260118-123"), _balanced) == 0
    out, err = capsys.readouterr()
    assert run_job("demo", _settings(run_id="run-20260118-123"), _balanced) == 0

    runs = history.runs
    assert list(runs) == ["run-20260118-123", "run-20260118-123.2", "run-20260118-123.3"]
    assert runs["run-20260118-123"].status is RunStatus.FAILED
    assert runs["run-20260118-123.2"].status is RunStatus.SUCCEEDED
    assert runs["run-20260118-123.2"].parameters["retry_of"] == "run-20260118-123"
    assert runs["run-20260118-123.3"].parameters["attempt"] == 3
    assert "demo run run-20260118-123.2 succeeded" in out
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {r["run_id"] for r in logged if r["message"] == "run finished"} == {"run-20260118-123.2"}
    assert history.leases == {}


def test_passwords_never_reach_the_stored_parameters(history: FakeRunHistory) -> None:
    settings = _settings(history_url="postgresql://etl:hunter2@db/etl")
    assert run_job("demo", settings, _balanced) == 0
    assert "hunter2" not in json.dumps(_only_run(history).parameters)


def test_held_lease_exits_75_and_the_loser_writes_nothing(
    history: FakeRunHistory, capsys: pytest.CaptureFixture[str]
) -> None:
    now = clock.now()
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    history.leases["demo/agency=10"] = Lease("other-run", now, expires, host="node-7", pid=42)
    called = []

    async def body(ctx: RunContext) -> JobOutcome:
        called.append(ctx)
        return JobOutcome()

    assert run_job("demo", _settings(), body) == 75
    assert (history.runs, called) == ({}, [])
    assert history.leases["demo/agency=10"].owner == "other-run"
    assert _error_lines(capsys.readouterr().err) == [
        "demo: error: LeaseHeld: lease 'demo/agency=10' is held by another run: run_id other-run"
        " on host node-7 (pid 42), lease expires 2030-01-02T03:04:05+00:00 unless renewed"
    ]


def test_lease_scope_can_be_chosen_by_the_job(history: FakeRunHistory) -> None:
    seen: list[str | None] = []

    async def body(ctx: RunContext) -> JobOutcome:
        seen.append(ctx.lease_name)
        return JobOutcome()

    assert run_job("demo", _settings(agency_id=None), body, lease_scope="out=s3://b/p") == 0
    assert seen == ["demo/out=s3://b/p"]


def test_unexpected_exception_fails_the_run_with_one_line_and_a_logged_traceback(
    history: FakeRunHistory, capsys: pytest.CaptureFixture[str]
) -> None:
    async def body(ctx: RunContext) -> JobOutcome:
        raise ValueError("boom\nsecond line")

    assert run_job("demo", _settings(), body) == 1
    run = _only_run(history)
    assert (run.status, run.error) == (RunStatus.FAILED, "ValueError: boom second line")
    err = capsys.readouterr().err
    assert _error_lines(err) == ["demo: error: ValueError: boom second line"]
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    failure = [entry for entry in logged if entry["level"] == "ERROR"]
    assert "Traceback" in failure[0]["exception"]
    assert failure[0]["run_id"] == run.run_id


def test_etl_errors_map_to_their_exit_code(history: FakeRunHistory) -> None:
    async def body(ctx: RunContext) -> JobOutcome:
        raise ConfigError("bad source URL")

    assert run_job("demo", _settings(), body) == 2
    assert _only_run(history).error == "ConfigError: bad source URL"


def test_dead_letter_ratio_over_the_threshold_fails_but_keeps_counts(
    history: FakeRunHistory,
) -> None:
    assert run_job("demo", _settings(max_dead_letter_ratio=0.05), _balanced) == 1
    run = _only_run(history)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith("DeadLetterThresholdExceeded")
    assert run.counts.rows_dead_letter == 1


def test_dead_letter_rows_alone_do_not_fail_a_run(history: FakeRunHistory) -> None:
    assert run_job("demo", _settings(max_dead_letter_ratio=0.1), _balanced) == 0


def test_unbalanced_counts_are_an_invariant_violation(history: FakeRunHistory) -> None:
    async def body(ctx: RunContext) -> JobOutcome:
        return _outcome(rows_in=10, rows_out=8)

    assert run_job("demo", _settings(), body) == 1
    assert _only_run(history).error == (
        "InvariantViolation: rows_in 10 != rows_out 8 + rows_duplicate 0 + rows_dead_letter 0"
    )


def test_a_failed_run_keeps_the_counts_of_partitions_it_recorded(history: FakeRunHistory) -> None:
    async def body(ctx: RunContext) -> JobOutcome:
        part = PartitionRecord(
            run_id=ctx.run_id,
            job=ctx.job,
            partition="agency_id=10/dt=2024-01-08",
            input_fingerprint="f",
            counts=Counts(rows_in=4, rows_out=4),
        )
        await ctx.record_partition(part)
        raise RuntimeError("disk on fire")

    assert run_job("demo", _settings(), body) == 1
    assert _only_run(history).counts == Counts(rows_in=4, rows_out=4)
    assert [p.partition for p in history.ledger] == ["agency_id=10/dt=2024-01-08"]
    assert history.ledger[0].recorded_at is not None


def test_heartbeats_keep_the_run_fresh(history: FakeRunHistory) -> None:
    async def body(ctx: RunContext) -> JobOutcome:
        await asyncio.sleep(0.4)
        return JobOutcome()

    assert run_job("demo", _settings(lease_ttl_seconds=0.3), body) == 0
    run = _only_run(history)
    assert run.heartbeat_at is not None
    assert run.heartbeat_at > run.started_at


def test_a_lost_lease_stops_the_body_and_exits_75(history: FakeRunHistory) -> None:
    async def body(ctx: RunContext) -> JobOutcome:
        now = clock.now()
        history.leases["demo/agency=10"] = Lease("thief", now, now + dt.timedelta(hours=1))
        await asyncio.sleep(5)
        return JobOutcome()

    assert run_job("demo", _settings(lease_ttl_seconds=0.3), body) == 75
    run = _only_run(history)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith("LeaseLost")
    assert history.leases["demo/agency=10"].owner == "thief"


class _FailsOnce(dict[str, BaseException]):
    """fail_on for a fake: each failure is raised once, then the operation works again."""

    def __init__(self, **failures: BaseException) -> None:
        super().__init__(failures)
        self.raised: list[str] = []

    def __getitem__(self, operation: str) -> BaseException:
        self.raised.append(operation)
        return self.pop(operation)


def test_a_heartbeat_blip_does_not_fail_the_run(
    history: FakeRunHistory, capsys: pytest.CaptureFixture[str]
) -> None:
    blip = _FailsOnce(heartbeat=RunHistoryError("db restarting"))
    history.fail_on = blip
    beats_after_the_blip: list[dt.datetime] = []

    async def body(ctx: RunContext) -> JobOutcome:
        # Wait for the blip, then for a heartbeat after it: events, however slow the machine.
        # (The timeout only turns a run whose heartbeats stopped into a failure, not a hang.)
        async with asyncio.timeout(60):
            while not blip.raised:
                await asyncio.sleep(0.01)
            blipped = history.runs[ctx.run_id].heartbeat_at
            while history.runs[ctx.run_id].heartbeat_at == blipped:
                await asyncio.sleep(0.01)
        beats_after_the_blip.append(history.runs[ctx.run_id].heartbeat_at or clock.now())
        return JobOutcome()

    assert run_job("demo", _settings(lease_ttl_seconds=0.3), body) == 0
    assert blip.raised == ["heartbeat"]
    assert len(beats_after_the_blip) == 1
    assert _only_run(history).status is RunStatus.SUCCEEDED
    assert "heartbeat failed: db restarting" in capsys.readouterr().err


def test_sigterm_records_a_failed_run_and_exits_75(history: FakeRunHistory) -> None:
    async def body(ctx: RunContext) -> JobOutcome:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(5)
        return JobOutcome()

    assert run_job("demo", _settings(), body) == 75
    assert _only_run(history).error == "Terminated: terminated by SIGTERM"
    assert history.leases == {}


def test_ctrl_c_records_a_failed_run(history: FakeRunHistory) -> None:
    async def body(ctx: RunContext) -> JobOutcome:
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(5)
        return JobOutcome()

    assert run_job("demo", _settings(), body) == 1
    run = _only_run(history)
    assert (run.status, run.error) == (RunStatus.FAILED, "KeyboardInterrupt: interrupted")


def test_unreachable_history_fails_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @asynccontextmanager
    async def opener(url: str, adapters: object) -> AsyncIterator[FakeRunHistory]:
        if url:
            raise RunHistoryError("cannot connect to db:5432")
        yield FakeRunHistory()

    monkeypatch.setattr(run_histories, "open_run_history", opener)
    assert run_job("demo", _settings(), _balanced) == 1
    assert _error_lines(capsys.readouterr().err) == [
        "demo: error: RunHistoryError: cannot connect to db:5432"
    ]


def test_failing_to_record_the_outcome_is_a_failure(history: FakeRunHistory) -> None:
    history.fail_on["finish_run"] = RunHistoryError("db gone")
    assert run_job("demo", _settings(), _balanced) == 1


def test_body_must_return_a_job_outcome(history: FakeRunHistory) -> None:
    async def body(ctx: RunContext) -> JobOutcome:
        return {"rows": 1}  # type: ignore[return-value]

    assert run_job("demo", _settings(), body) == 1
    assert "not JobOutcome" in (_only_run(history).error or "")


def test_dry_run_writes_no_history_takes_no_lease_and_still_reports(
    history: FakeRunHistory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "h.sqlite3"
    seen = []

    async def body(ctx: RunContext) -> JobOutcome:
        seen.append((ctx.dry_run, ctx.lease_name, await ctx.history.list_runs()))
        await ctx.record_partition(
            PartitionRecord(
                run_id=ctx.run_id, job=ctx.job, partition="p", input_fingerprint="f",
                counts=Counts(),
            )
        )  # fmt: skip
        await ctx.heartbeat()
        return _outcome(rows_in=3, rows_out=3)

    settings = _settings(dry_run=True, history_url=f"sqlite:///{missing}")
    assert run_job("demo", settings, body) == 0
    assert seen == [(True, None, [])]
    assert (history.runs, history.leases, history.ledger, history.migrations) == ({}, {}, [], 0)
    assert not missing.exists()
    assert "succeeded in" in capsys.readouterr().out


def test_dry_run_reads_an_existing_history(history: FakeRunHistory, tmp_path: Path) -> None:
    assert run_job("demo", _settings(), _balanced) == 0
    existing = tmp_path / "h.sqlite3"
    existing.touch()
    seen = []

    async def body(ctx: RunContext) -> JobOutcome:
        seen.extend(await ctx.history.list_runs(job="demo"))
        return JobOutcome()

    settings = _settings(dry_run=True, history_url=f"sqlite:///{existing}")
    assert run_job("demo", settings, body) == 0
    assert seen == list(history.runs.values())
    assert len(history.runs) == 1


def test_bad_log_level_is_a_usage_error(history: FakeRunHistory) -> None:
    assert run_job("demo", _settings(), _balanced, log_level="LOUD") == 2
    assert history.runs == {}


def test_a_real_sqlite_history_records_the_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    assert run_job("demo", _settings(history_url=url), _balanced) == 0

    async def read() -> list[RunRecord]:
        async with run_histories.open_run_history(url, every_history()) as real:
            return await real.list_runs(job="demo")

    [run] = asyncio.run(read())
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts.rows_in == 10


def test_sigterm_during_set_up_records_the_run_without_starting_the_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @attrs.define
    class SlowToOpen(FakeRunHistory):
        async def migrate(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. the pod is evicted while connecting
            await asyncio.sleep(0.05)
            await super().migrate()

    history = SlowToOpen()

    @asynccontextmanager
    async def opener(url: str, adapters: object) -> AsyncIterator[FakeRunHistory]:
        yield history

    monkeypatch.setattr(run_histories, "open_run_history", opener)
    called: list[RunContext] = []

    async def body(ctx: RunContext) -> JobOutcome:
        called.append(ctx)
        return JobOutcome()

    assert run_job("demo", _settings(), body) == 75
    run = _only_run(history)
    assert (run.status, run.error, called) == (
        RunStatus.FAILED, "Terminated: terminated by SIGTERM", []
    )  # fmt: skip
    assert history.leases == {}


def test_sigterm_before_the_run_starts_is_recorded_too(history: FakeRunHistory) -> None:
    # As jobs.cli does while it loads a job: the signal is noted, then run_job records it.
    with sigterm.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        code = run_job("demo", _settings(), _balanced)

    assert code == 75
    run = _only_run(history)
    assert (run.status, run.error) == (RunStatus.FAILED, "Terminated: terminated by SIGTERM")
