"""In-process tests of the data-pipeline command (subprocess tests live in tests/python/e2e)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import Counts, RunRecord, RunStatus

from jobs import cli


def _seed(url: str) -> None:
    now = dt.datetime.now(dt.UTC)

    async def write() -> None:
        async with open_run_history(url, every_history()) as history:
            await history.start_run(
                RunRecord(
                    run_id="dead-run",
                    job="bronze_to_silver",
                    status=RunStatus.RUNNING,
                    started_at=now - dt.timedelta(hours=3),
                    agency_id=4,
                )
            )
            await history.start_run(
                RunRecord(run_id="ok-run", job="generate", status=RunStatus.RUNNING, started_at=now)
            )
            await history.finish_run(
                "ok-run",
                status=RunStatus.SUCCEEDED,
                finished_at=now + dt.timedelta(seconds=75),
                counts=Counts(
                    rows_in=1000, rows_out=1000, bytes_out=2_500_000,
                    rows_inserted=700, rows_updated=300,
                ),  # fmt: skip
            )

    asyncio.run(write())


def test_no_arguments_print_usage_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: data-pipeline" in capsys.readouterr().err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "runs [--job JOB]" in out
    assert "75 temporary failure" in out


def test_list_shows_names_and_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    assert any(line.startswith("generate  ") for line in capsys.readouterr().out.splitlines())


def test_unknown_job_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "nope", "--", "--x"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("data-pipeline: error: unknown job 'nope' (known jobs: ")
    assert "generate" in err[0]


def test_run_needs_a_job_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run"]) == 2
    assert cli.main(["--bogus"]) == 2


def test_job_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "generate", "--", "--help"]) == 0
    assert cli.main(["generate", "--help"]) == 0
    assert "--records" in capsys.readouterr().out


def test_bad_job_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["generate", "--no-such-flag"]) == 2


def test_runs_on_a_missing_history_is_an_error_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    assert cli.main(["runs", "--history", url]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"data-pipeline: error: no run history at {url}: the file does not exist"
    )
    assert not (tmp_path / "h.sqlite3").exists()


def test_runs_table_shows_status_including_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    _seed(url)
    assert cli.main(["runs", "--history", url]) == 0
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["RUN_ID", "JOB", "AGENCY", "STATUS"]
    assert first.split()[:3] == ["ok-run", "generate", "succeeded"]
    assert "1m15s" in first
    assert "2.5 MB" in first
    assert second.split()[:4] == ["dead-run", "bronze_to_silver", "4", "stale"]


def test_runs_table_shows_rows_inserted_and_updated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    _seed(url)
    assert cli.main(["runs", "--history", url, "--job", "generate"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    cells = {name: _right_aligned_cell(header, row, name) for name in
             ("OUT", "DEAD", "INSERTED", "UPDATED")}  # fmt: skip
    assert cells == {"OUT": "1,000", "DEAD": "0", "INSERTED": "700", "UPDATED": "300"}


def _right_aligned_cell(header: str, row: str, column: str) -> str:
    """A number ends where its column's name ends."""
    found = re.search(rf"(?<!\S){column}(?!\S)", header)
    assert found is not None, f"no column {column} in {header!r}"
    return row[: found.end()].split()[-1]


def test_runs_filters_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    _seed(url)
    assert cli.main(["runs", "--history", url, "--agency-id", "4", "--json"]) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert (run["run_id"], run["status"], run["effective_status"]) == (
        "dead-run",
        "running",
        "stale",
    )
    assert cli.main(["runs", "--history", url, "--job", "generate", "--json", "--limit", "1"]) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert run["duration_s"] == 75.0
    assert (run["counts"]["rows_inserted"], run["counts"]["rows_updated"]) == (700, 300)


def test_runs_reads_the_history_from_the_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/h.sqlite3"
    _seed(url)
    config = tmp_path / "c.toml"
    config.write_text(f'history_url = "{url}"\n')
    assert cli.main(["runs", "--config", str(config), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--history", "mysql://u:secret@h/db"], "invalid run history URL 'mysql://u:***@h/db'"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--config", "/nonexistent/c.toml"], "/nonexistent/c.toml: cannot read config file"),
    ],
)
def test_runs_usage_errors(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["runs", *argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert problem in err[0]
    assert "secret" not in err[0]


def test_k8s_needs_the_render_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["k8s"]) == 2
    assert "k8s render" in capsys.readouterr().err
