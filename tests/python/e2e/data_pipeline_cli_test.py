"""The data-pipeline command as users run it: a subprocess in a fresh working directory."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history

# Imported, not only run: so the build's dependency inference ships these (and what they import)
# with the test, and the subprocess finds them on PYTHONPATH.
from jobs import cli, generate

from e2e.cli_support import cli as run_cli


def _cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, *args, env=env, timeout=120)


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the JSON log records: what a person reads."""
    return [line for line in result.stderr.splitlines() if not line.startswith("{")]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_list_shows_the_jobs(tmp_path: Path) -> None:
    result = _cli(tmp_path, "list")
    assert result.returncode == 0, result.stderr
    assert generate.NAME in result.stdout
    assert result.stderr == ""


def test_unknown_job_exits_2_with_one_line(tmp_path: Path) -> None:
    result = _cli(tmp_path, "run", "no-such-job", "--", "--agency-id", "1")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{cli.PROG}: error: unknown job 'no-such-job' (known jobs: ")
    assert "generate" in line


def test_malformed_config_exits_2_naming_the_file_and_problem(tmp_path: Path) -> None:
    config = tmp_path / "etl.toml"
    config.write_text("records = \n")
    result = _cli(tmp_path, "run", "generate", "--", "--config", str(config))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"generate: error: {config}: invalid TOML: ")
    assert not (tmp_path / ".etl").exists()


def test_wrong_value_in_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "etl.toml"
    config.write_text('max_dead_letter_ratio = "high"\n')
    result = _cli(tmp_path, "generate", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"generate: error: {config} @ $.max_dead_letter_ratio: expected a number, got 'high'"
    ]


def test_unknown_config_key_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "etl.toml"
    config.write_text("[jobs.generate]\nrecordz = 5\n")
    result = _cli(tmp_path, "generate", "--config", str(config))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert f"{config} @ $.jobs.generate.recordz: unknown key" in line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--out", "s3://"], "invalid object store URL 's3://': no bucket"),
        (
            ["--history", "mysql://etl:hunter2@db/x"],
            "invalid run history URL 'mysql://etl:***@db/x'",
        ),
    ],
)
def test_bad_url_exits_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = _cli(tmp_path, "generate", *args)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert fragment in line
    assert "hunter2" not in result.stderr


def test_generate_writes_the_layout_and_runs_shows_it(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = _cli(tmp_path, "run", "generate", "--", "--records", "1000", "--out", f"file://{out}")
    assert result.returncode == 0, result.stderr
    files = _files(out)
    assert "agencies.csv" in files
    assert "manifest.json" in files
    bronze = [f for f in files if f.startswith("bronze/")]
    assert bronze[0] == "bronze/agency_id=1/dt=2024-01-08/part-0.ndjson"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input_rows"] == 1000
    # Logs are JSON lines on stderr (not a TTY), the summary is on stdout.
    logged = [json.loads(line) for line in result.stderr.splitlines()]
    assert {entry["job"] for entry in logged} == {"generate"}
    run_id = logged[0]["run_id"]
    assert f"generate run {run_id} succeeded" in result.stdout
    assert "rows: in 1,000  out 1,000" in result.stdout
    # The default history lives under ./.etl of the working directory.
    assert (tmp_path / ".etl" / "history.sqlite3").exists()

    runs = _cli(tmp_path, "runs")
    assert runs.returncode == 0, runs.stderr
    header, row = runs.stdout.splitlines()
    assert header.split()[:4] == ["RUN_ID", "JOB", "AGENCY", "STATUS"]
    assert row.split()[:3] == [run_id, "generate", "succeeded"]
    assert "1,000" in row

    as_json = _cli(tmp_path, "runs", "--json", "--job", "generate")
    [record] = json.loads(as_json.stdout)
    assert record["counts"]["bytes_out"] == manifest["input_bytes"]
    assert record["artifacts"] == ["manifest.json"]
    assert len(record["trace_id"]) == 32


def test_a_held_lease_exits_75_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "data"
    history = tmp_path / "h.sqlite3"
    url = f"sqlite:///{history}"

    async def run_while_held() -> subprocess.CompletedProcess[str]:
        # The holder (this process) stays alive meanwhile: one that exits frees its lease at once.
        async with open_run_history(url, every_history()) as runs:
            lease = f"generate/out=file://{out}"
            assert await runs.acquire(lease, "another-run", dt.timedelta(hours=1))
            return await asyncio.to_thread(
                _cli, tmp_path, "generate", "--records", "100", "--out", f"file://{out}",
                "--history", url,
            )  # fmt: skip

    result = asyncio.run(run_while_held())
    assert result.returncode == 75
    [line] = _error_lines(result)
    assert line.startswith(
        f"generate: error: LeaseHeld: lease 'generate/out=file://{out}' is held by another run:"
        f" run_id another-run on host {socket.gethostname()} (pid {os.getpid()}), lease expires"
    )
    assert not out.exists()
    assert json.loads(_cli(tmp_path, "runs", "--history", url, "--json").stdout) == []


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = _cli(tmp_path, "generate", "--records", "500", "--out", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "(dry run)" in result.stdout
    assert "rows: in 500  out 500" in result.stdout
    assert not out.exists()
    assert not (tmp_path / ".etl").exists()
    runs = _cli(tmp_path, "runs", "--json")
    assert runs.returncode == 2  # no history: the dry run recorded nothing, not even a file
    assert "no run history at sqlite:///./.etl/history.sqlite3" in runs.stderr
    assert not (tmp_path / ".etl").exists()


def test_console_exporter_prints_spans_with_the_run_id(tmp_path: Path) -> None:
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "etl-e2e"}
    result = _cli(tmp_path, "generate", "--records", "50", "--files", "1", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    # One JSON object per line, spans and logs alike.
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    spans = [line for line in lines if "context" in line and "span_id" in line["context"]]
    assert "write_workload" in {span["name"] for span in spans}
    assert all(span["attributes"]["run_id"] for span in spans)
    assert {span["resource"]["attributes"]["service.name"] for span in spans} == {"etl-e2e"}
    assert any(line.get("message") == "run finished" for line in lines)
