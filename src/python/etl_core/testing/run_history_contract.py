"""Reusable RunHistory contract suite: subclass RunHistoryContract and provide a `history` fixture.

The fixture yields a migrated RunHistory and closes it afterwards. Tests use fresh run ids and a
job name unique to the test, so suites may share one database and need no cleanup.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import attrs
import pytest

from etl_core.clock import new_run_id, now
from etl_core.errors import RunAlreadyExists, RunHistoryError, RunNotFound
from etl_core.model import Counts, PartitionRecord, RunRecord, RunStatus
from etl_core.ports import RunHistory
from etl_core.testing.conformance import assert_implements

HOUR = dt.timedelta(hours=1)


def _ago(delta: dt.timedelta) -> dt.datetime:
    return now() - delta


class RunHistoryContract:
    """Behaviour every RunHistory adapter and fake must show."""

    @pytest.fixture()
    def job(self) -> str:
        """A job name unique to this test, so list_runs sees only this test's runs."""
        return f"contract-{uuid.uuid4().hex[:12]}"

    def new_run(
        self, job: str, *, started_at: dt.datetime | None = None, **fields: Any
    ) -> RunRecord:
        """A RUNNING run of job with a fresh run id, started now unless told otherwise."""
        return RunRecord(
            run_id=new_run_id(),
            job=job,
            status=RunStatus.RUNNING,
            started_at=started_at or now(),
            **fields,
        )

    async def test_implements_the_port(self, history: RunHistory) -> None:
        assert_implements(history, RunHistory)

    async def test_started_run_reads_back_equal(self, history: RunHistory, job: str) -> None:
        run = self.new_run(
            job,
            agency_id=10,
            parameters={"records": 1000, "dry_run": False, "nested": {"a": [1, "x", None]}},
            trace_id="0af7651916cd43dd8448eb211c80319c",
            host="worker-1",
            code_version="1.2.3+abc",
        )
        await history.start_run(run)
        assert await history.get_run(run.run_id) == run

    async def test_starting_a_run_id_twice_raises_run_already_exists(
        self, history: RunHistory, job: str
    ) -> None:
        run = self.new_run(job)
        await history.start_run(run)
        with pytest.raises(RunAlreadyExists) as error:
            await history.start_run(attrs.evolve(run, job=f"{job}-other"))
        assert error.value.run_id == run.run_id
        assert (await history.get_run(run.run_id)).job == job

    async def test_unknown_run_raises_run_not_found(self, history: RunHistory) -> None:
        missing = new_run_id()
        with pytest.raises(RunNotFound) as error:
            await history.get_run(missing)
        assert error.value.run_id == missing
        with pytest.raises(RunNotFound):
            await history.heartbeat(missing, now())
        with pytest.raises(RunNotFound):
            await history.finish_run(
                missing, status=RunStatus.FAILED, finished_at=now(), counts=Counts()
            )
        assert await history.partitions(missing) == []

    async def test_heartbeat_records_when_the_run_was_last_alive(
        self, history: RunHistory, job: str
    ) -> None:
        run = self.new_run(job, started_at=_ago(HOUR))
        await history.start_run(run)
        beat = now()
        await history.heartbeat(run.run_id, beat)
        assert (await history.get_run(run.run_id)).heartbeat_at == beat

    async def test_finish_run_records_counts_artifacts_and_duration(
        self, history: RunHistory, job: str
    ) -> None:
        run = self.new_run(job, started_at=_ago(dt.timedelta(seconds=90)))
        await history.start_run(run)
        counts = Counts(rows_in=10, rows_out=7, rows_duplicate=2, rows_dead_letter=1,
                        bytes_in=2048, bytes_out=1024)  # fmt: skip
        finished_at = now()
        await history.finish_run(
            run.run_id,
            status=RunStatus.SUCCEEDED,
            finished_at=finished_at,
            counts=counts,
            artifacts=["silver/agency_id=1/dt=2024-01-08/part-0.ndjson", "_manifests/x.json"],
        )
        done = await history.get_run(run.run_id)
        assert done == attrs.evolve(
            run,
            status=RunStatus.SUCCEEDED,
            finished_at=finished_at,
            counts=counts,
            artifacts=("silver/agency_id=1/dt=2024-01-08/part-0.ndjson", "_manifests/x.json"),
        )
        assert done.duration == finished_at - run.started_at

    async def test_inserted_and_updated_counts_persist_per_run_and_per_partition(
        self, history: RunHistory, job: str
    ) -> None:
        run = self.new_run(job, agency_id=10)
        await history.start_run(run)
        merged = Counts(rows_in=5, rows_out=5, rows_inserted=3, rows_updated=2)
        first = self.new_partition(run, "agency_id=10/dt=2024-01-08", counts=merged)
        second = self.new_partition(
            run, "agency_id=10/dt=2024-01-09", counts=Counts(rows_in=4, rows_out=4, rows_inserted=4)
        )
        earlier = attrs.evolve(first, counts=Counts(rows_in=5, rows_out=5, rows_inserted=5))
        for partition in (earlier, first, second):  # first's upsert replaces earlier's counts
            await history.record_partition(partition)
        total = first.counts + second.counts
        await history.finish_run(
            run.run_id, status=RunStatus.SUCCEEDED, finished_at=now(), counts=total
        )

        assert [p.counts for p in await history.partitions(run.run_id)] == [merged, second.counts]
        stored = await history.get_run(run.run_id)
        assert (stored.counts.rows_inserted, stored.counts.rows_updated) == (7, 2)
        assert stored.counts == total
        assert [r.counts for r in await history.list_runs(job=job)] == [total]

    async def test_failed_run_keeps_its_error_text(self, history: RunHistory, job: str) -> None:
        run = self.new_run(job)
        await history.start_run(run)
        error = "DataError: bronze/agency_id=10/dt=2024-01-08/part-0.ndjson:1532: 'boom'\nline 2"
        await history.finish_run(
            run.run_id, status=RunStatus.FAILED, finished_at=now(), counts=Counts(), error=error
        )
        failed = await history.get_run(run.run_id)
        assert (failed.status, failed.error) == (RunStatus.FAILED, error)

    async def test_list_runs_is_newest_first_and_limited(
        self, history: RunHistory, job: str
    ) -> None:
        runs = [self.new_run(job, started_at=_ago(dt.timedelta(minutes=m))) for m in (30, 10, 20)]
        for run in runs:
            await history.start_run(run)
        newest_first = [runs[1].run_id, runs[2].run_id, runs[0].run_id]
        assert [r.run_id for r in await history.list_runs(job=job)] == newest_first
        assert [r.run_id for r in await history.list_runs(job=job, limit=2)] == newest_first[:2]
        assert await history.list_runs(job=job, limit=0) == []

    async def test_list_runs_filters_by_job_and_agency(self, history: RunHistory, job: str) -> None:
        mine = self.new_run(job, agency_id=3)
        other_agency = self.new_run(job, agency_id=4)
        other_job = self.new_run(f"{job}-other", agency_id=3)
        for run in (mine, other_agency, other_job):
            await history.start_run(run)
        assert await history.list_runs(job=job, agency_id=3) == [mine]
        assert {r.run_id for r in await history.list_runs(job=job)} == {
            mine.run_id, other_agency.run_id,
        }  # fmt: skip
        by_agency = await history.list_runs(agency_id=3, limit=1000)
        assert {mine.run_id, other_job.run_id} <= {r.run_id for r in by_agency}
        assert other_agency.run_id not in {r.run_id for r in by_agency}

    async def test_list_runs_filters_by_stored_status_and_parent_run(
        self, history: RunHistory, job: str
    ) -> None:
        child = self.new_run(job, parameters={"parent_run_id": f"{job}-parent", "x": 1})
        other_child = self.new_run(job, parameters={"parent_run_id": f"{job}-other"})
        orphan = self.new_run(job)
        for run in (child, other_child, orphan):
            await history.start_run(run)
        await history.finish_run(
            child.run_id, status=RunStatus.FAILED, finished_at=now(), counts=Counts(), error="x"
        )

        by_parent = await history.list_runs(parent_run_id=f"{job}-parent")
        assert [r.run_id for r in by_parent] == [child.run_id]
        failed = await history.list_runs(job=job, status=RunStatus.FAILED)
        assert [r.run_id for r in failed] == [child.run_id]
        running = await history.list_runs(job=job, status=RunStatus.RUNNING)
        assert {r.run_id for r in running} == {other_child.run_id, orphan.run_id}
        assert await history.list_runs(job=job, status=RunStatus.SUCCEEDED) == []

    async def test_run_without_recent_heartbeat_reads_as_stale(
        self, history: RunHistory, job: str
    ) -> None:
        stale_after = dt.timedelta(minutes=5)
        run = self.new_run(job, started_at=_ago(HOUR))
        await history.start_run(run)
        stored = await history.get_run(run.run_id)
        assert stored.effective_status(now(), stale_after) is RunStatus.STALE
        await history.heartbeat(run.run_id, now())
        alive = await history.get_run(run.run_id)
        assert alive.effective_status(now(), stale_after) is RunStatus.RUNNING
        await history.finish_run(
            run.run_id, status=RunStatus.SUCCEEDED, finished_at=now(), counts=Counts()
        )
        done = await history.get_run(run.run_id)
        assert done.effective_status(now() + HOUR, stale_after) is RunStatus.SUCCEEDED

    def new_partition(self, run: RunRecord, name: str, **changes: Any) -> PartitionRecord:
        """A ledger row of run for partition name, with plausible counts."""
        row = PartitionRecord(
            run_id=run.run_id,
            job=run.job,
            partition=name,
            input_fingerprint=f"sha256:{uuid.uuid4().hex}",
            counts=Counts(rows_in=5, rows_out=4, rows_duplicate=1, bytes_in=500, bytes_out=400),
            agency_id=run.agency_id,
            artifacts=(f"silver/{name}/part-0.ndjson",),
            recorded_at=now(),
        )
        return attrs.evolve(row, **changes)

    async def test_partitions_read_back_ordered_by_partition(
        self, history: RunHistory, job: str
    ) -> None:
        run = self.new_run(job, agency_id=10)
        await history.start_run(run)
        second = self.new_partition(run, "agency_id=10/dt=2024-01-09")
        first = self.new_partition(
            run, "agency_id=10/dt=2024-01-08", status="skipped", artifacts=()
        )
        await history.record_partition(second)
        await history.record_partition(first)
        assert await history.partitions(run.run_id) == [first, second]

    async def test_record_partition_is_an_idempotent_upsert(
        self, history: RunHistory, job: str
    ) -> None:
        run = self.new_run(job)
        await history.start_run(run)
        row = self.new_partition(run, "agency_id=1/dt=2024-01-08")
        await history.record_partition(row)
        await history.record_partition(row)
        assert await history.partitions(run.run_id) == [row]
        corrected = attrs.evolve(row, counts=Counts(rows_in=5, rows_out=5), input_fingerprint="v2")
        await history.record_partition(corrected)
        assert await history.partitions(run.run_id) == [corrected]

    async def test_record_partition_fills_in_recorded_at(
        self, history: RunHistory, job: str
    ) -> None:
        run = self.new_run(job)
        await history.start_run(run)
        before = now()
        row = self.new_partition(run, "agency_id=1/dt=2024-01-08", recorded_at=None)
        await history.record_partition(row)
        [stored] = await history.partitions(run.run_id)
        assert stored.recorded_at is not None
        slack = dt.timedelta(seconds=5)
        assert before - slack <= stored.recorded_at <= now() + slack
        assert attrs.evolve(stored, recorded_at=None) == row

    async def test_record_partition_of_unknown_run_raises_run_not_found(
        self, history: RunHistory, job: str
    ) -> None:
        ghost = self.new_run(job)
        with pytest.raises(RunNotFound):
            await history.record_partition(self.new_partition(ghost, "agency_id=1/dt=2024-01-08"))

    async def test_migrate_again_is_harmless(self, history: RunHistory, job: str) -> None:
        run = self.new_run(job)
        await history.start_run(run)
        await history.migrate()
        await history.migrate()
        assert await history.get_run(run.run_id) == run

    async def test_close_is_idempotent(self, history: RunHistory, job: str) -> None:
        run = self.new_run(job)
        await history.start_run(run)
        await history.close()
        await history.close()  # neither raises nor reopens: the history stays closed
        with pytest.raises(RunHistoryError):
            await history.get_run(run.run_id)
