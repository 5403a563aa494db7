"""The ingest_api command: source required, dt and credentials checked, store sources, dry runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from data_pipeline.ingest.configuration import IngestSettings
from data_pipeline.ingest.pull import IngestState, dump_state
from etl_core.model import RunRecord, RunStatus
from etl_core.testing.history_readback import recorded

from jobs import ingest_api, registry

LINES = [b'{"record_id":"A005-%08d","agency_id":5}' % i for i in range(30)]


def _runs(url: str) -> list[RunRecord]:
    return recorded(url).runs


@pytest.fixture()
def lake(tmp_path: Path) -> Path:
    """A bronze store with 30 records of agency 5 (any record source can feed an ingestion)."""
    part = tmp_path / "lake/bronze/agency_id=5/dt=2024-01-08/part-0.ndjson"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\n".join(LINES) + b"\n")
    return tmp_path / "lake"


def _argv(tmp_path: Path, lake: Path, *extra: str) -> list[str]:
    history = f"sqlite:///{tmp_path}/h.sqlite3"
    return ["--agency-id", "5", "--source", str(lake), "--store", str(tmp_path / "out"),
            "--history", history, "--log-format", "json", *extra]  # fmt: skip


def _bronze(out: Path) -> list[bytes]:
    return [
        line
        for part in sorted((out / "bronze").rglob("*.ndjson"))
        for line in part.read_bytes().splitlines()
    ]


def test_records_land_in_bronze_parts_of_the_given_dt(tmp_path: Path, lake: Path) -> None:
    argv = _argv(tmp_path, lake, "--dt", "2024-03-01", "--batch-size", "8")

    assert ingest_api.entrypoint(argv) == 0

    parts = sorted((tmp_path / "out/bronze/agency_id=5/dt=2024-03-01").iterdir())
    assert len(parts) == 4  # one source batch (8 records) per part
    assert _bronze(tmp_path / "out") == LINES
    [run] = _runs(f"sqlite:///{tmp_path}/h.sqlite3")
    assert (run.status, run.counts.rows_out, len(run.artifacts)) == (RunStatus.SUCCEEDED, 30, 4)
    assert run.parameters["dt"] == "2024-03-01"
    assert len(run.parameters["source_id"]) == 12


def test_a_second_run_writes_nothing(tmp_path: Path, lake: Path) -> None:
    argv = _argv(tmp_path, lake, "--dt", "2024-03-01")
    assert ingest_api.entrypoint(argv) == 0
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}

    assert ingest_api.entrypoint(argv) == 0

    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before


def test_without_dt_an_unfinished_pull_is_resumed(tmp_path: Path, lake: Path) -> None:
    settings = IngestSettings(agency_id=5, source_url=str(lake))
    checkpoint = (
        tmp_path / f"out/_checkpoints/ingest_api/agency_id=5/source={settings.source_id}"
        "/dt=2023-12-31.json"
    )
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(dump_state(IngestState(cursor=None, next_part=0)))

    assert ingest_api.entrypoint(_argv(tmp_path, lake)) == 0

    assert [p.name for p in (tmp_path / "out/bronze/agency_id=5").iterdir()] == ["dt=2023-12-31"]


def test_a_dry_run_writes_nothing(tmp_path: Path, lake: Path) -> None:
    assert ingest_api.entrypoint(_argv(tmp_path, lake, "--dry-run")) == 0

    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "h.sqlite3").exists()


def test_the_source_id_ignores_credentials_but_not_what_is_read() -> None:
    def source_id(url: str, *, auth_env: str | None = None, records_path: str = "data") -> str:
        settings = IngestSettings(
            agency_id=1, source_url=url, auth_env=auth_env, records_path=records_path
        )
        return settings.source_id

    base = source_id("https://api.example.com/r?token=one")
    since = IngestSettings(
        agency_id=1, source_url="https://api.example.com/r?token=one", since_param="updated_since"
    )
    assert since.source_id != base  # another way of reading: its own pull state
    assert source_id("https://api.example.com/r?token=two") == base
    assert source_id("https://api.example.com/r?token=one", auth_env="OTHER") == base
    assert source_id("https://api.example.com/r?token=one", records_path="items") != base
    assert source_id("https://api.example.com/s") != base
    named = IngestSettings(
        agency_id=1, source_url="https://api.example.com/r?token=one", page_param="after"
    )
    assert named.source_id != base  # the API's own names: another way of reading
    # The default names keep the id sources had before the names could be set.
    assert (
        base
        == hashlib.sha256(
            b"https://api.example.com/r?token=***|cursor|data|None|id|agency_id|None"
        ).hexdigest()[:12]
    )


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--agency-id", "5"], "a source is required"),
        (["--agency-id", "5", "--source", "https://a.example.com/r", "--dt", "2024-02-30"],
         "@ --dt: expected a date YYYY-MM-DD, got '2024-02-30'"),
        (["--agency-id", "5", "--source", "https://a.example.com/r", "--auth-env", "NOPE_UNSET"],
         "environment variable NOPE_UNSET (API credentials) is not set"),
        (["--agency-id", "5", "--source", "https://u:hunter2@a.example.com/r", "--batch-size", "0"],
         "@ --batch-size: must be >= 1"),
        (["--agency-id", "5", "--source", "/some/lake", "--since-param", "updated_since"],
         "@ --since-param: only an HTTP API source can be asked what changed since"),
        (["--agency-id", "5", "--source", "https://a.example.com/r", "--since-param", "a=b&c"],
         "@ --since-param: expected a query parameter name"),
    ],
)  # fmt: skip
def test_configuration_errors_exit_2_with_one_line(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ingest_api.entrypoint(argv) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ingest_api: error: ")
    assert problem in line
    assert "hunter2" not in line


def test_the_job_tuple_is_well_formed() -> None:
    # Well formed is what the registry accepts: a plain function of argv and a description.
    job = registry.load("ingest_api")
    assert (job.name, job.module) == ("ingest_api", "jobs.ingest_api")
    assert job.entrypoint is ingest_api.entrypoint
    assert job.description == ingest_api.JOB[1].strip() != ""
