"""Tests for the generate job: writes the workload, records the run, dry-run writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from etl_core.model import RunRecord, RunStatus
from etl_core.testing.history_readback import recorded

from jobs import generate, registry


def _runs(url: str) -> list[RunRecord]:
    return recorded(url).runs


@pytest.fixture()
def history_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/history.sqlite3"


def test_generate_writes_the_layout_and_records_the_run(tmp_path: Path, history_url: str) -> None:
    out = tmp_path / "out"
    argv = ["--records", "200", "--files", "4", "--out", f"file://{out}", "--history", history_url,
            "--log-format", "json"]  # fmt: skip
    assert generate.entrypoint(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / "agencies.csv").exists()
    parts = sorted(p.relative_to(out).as_posix() for p in (out / "bronze").rglob("*.ndjson"))
    assert parts[0] == "bronze/agency_id=1/dt=2024-01-08/part-0.ndjson"
    assert len(parts) == 4
    [run] = _runs(history_url)
    assert (run.job, run.status, run.agency_id) == ("generate", RunStatus.SUCCEEDED, None)
    assert run.counts.rows_in == run.counts.rows_out == manifest["input_rows"] == 200
    assert run.counts.bytes_out == manifest["input_bytes"]
    assert run.artifacts == ("manifest.json",)
    assert run.parameters["out"] == f"file://{out}"
    assert run.parameters["records"] == 200


def test_out_defaults_to_the_configured_store(
    tmp_path: Path, history_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_STORE_URL", str(tmp_path / "store"))
    argv = ["--records", "10", "--files", "1", "--history", history_url, "--log-format", "json"]
    assert generate.entrypoint(argv) == 0
    assert (tmp_path / "store" / "manifest.json").exists()


def test_job_table_of_the_config_file_sets_options(tmp_path: Path, history_url: str) -> None:
    config = tmp_path / "etl.toml"
    config.write_text(f'history_url = "{history_url}"\n[jobs.generate]\nrecords = 30\nfiles = 3\n')
    out = tmp_path / "out"
    assert generate.entrypoint(["--config", str(config), "--out", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["input_rows"] == 30


def test_dry_run_generates_but_writes_nothing(
    tmp_path: Path, history_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["--records", "50", "--files", "2", "--out", str(out), "--history", history_url,
            "--dry-run", "--log-format", "json"]  # fmt: skip
    assert generate.entrypoint(argv) == 0
    assert not out.exists()
    assert not (tmp_path / "history.sqlite3").exists()
    stdout = capsys.readouterr().out
    assert "succeeded" in stdout
    assert "(dry run)" in stdout
    assert "rows: in 50  out 50" in stdout
    assert "objects not written (dry run): 4" in stdout


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (
            ["--out", "ftp://host/x"],
            "command line @ --out: invalid object store URL 'ftp://host/x'",
        ),
        (["--records", "-1"], "command line @ --records: must be >= 0, got -1"),
        (["--bad-rate", "2"], "command line @ --bad-rate: must be between 0 and 1"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate.entrypoint(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("generate: error: ")
    assert problem in err[0]


def test_job_tuple_is_well_formed() -> None:
    # Well formed is what the registry accepts: a plain function of argv and a description.
    job = registry.load("generate")
    assert (job.name, job.module) == ("generate", "jobs.generate")
    assert job.entrypoint is generate.entrypoint
    assert job.description == generate.JOB[1].strip() != ""
