"""Tests for the get_s3_files job: flags, config, exit codes and the recorded run (local stores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_pipeline.copy import configuration
from data_pipeline.copy.configuration import store_url
from etl_core.model import PartitionRecord, RunRecord, RunStatus
from etl_core.testing.history_readback import recorded

from jobs import cli, get_s3_files

DOCS = {
    "agency_id=10/a.pdf": b"%PDF a",
    "agency_id=10/scans/dt=2024-01-08/b.png": b"png b",
    "agency_id=1/c.pdf": b"agency 1",
}


def _history(url: str) -> tuple[list[RunRecord], dict[str, list[PartitionRecord]]]:
    found = recorded(url)
    return found.runs, found.partitions


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for key, body in DOCS.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        os.utime(path, (1709294400, 1709294400))  # 2024-03-01T12:00:00Z
    return root


@pytest.fixture()
def argv(tmp_path: Path, source: Path) -> list[str]:
    history = f"sqlite:///{tmp_path}/history.sqlite3"
    return ["--agency-id", "10", "--source-bucket", f"file://{source}",
            "--destination-bucket", f"file://{tmp_path / 'lake'}",
            "--history", history, "--log-format", "json"]  # fmt: skip


def test_copies_into_bronze_and_records_the_run(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert get_s3_files.entrypoint(argv) == 0
    lake = _files(tmp_path / "lake")
    [manifest] = [key for key in lake if key.startswith("_copies/")]
    assert {key: body for key, body in lake.items() if key != manifest} == {
        "bronze/agency_id=10/dt=2024-03-01/a.pdf": b"%PDF a",
        "bronze/agency_id=10/dt=2024-01-08/scans/b.png": b"png b",
    }
    [run], partitions = _history(f"sqlite:///{tmp_path}/history.sqlite3")
    assert (run.job, run.status, run.agency_id) == ("get_s3_files", RunStatus.SUCCEEDED, 10)
    assert (run.counts.rows_in, run.counts.rows_out, run.counts.bytes_out) == (2, 2, 11)
    assert run.artifacts == (manifest,)
    assert manifest == f"_copies/get_s3_files/agency_id=10/{run.run_id}.json"
    assert run.parameters["source"] == f"file://{tmp_path / 'docs'}"
    assert run.parameters["max_dead_letter_ratio"] == 0.0
    assert [p.partition for p in partitions[run.run_id]] == [
        "agency_id=10/dt=2024-01-08",
        "agency_id=10/dt=2024-03-01",
    ]
    assert "copied: 2" in capsys.readouterr().out


def test_a_second_run_copies_nothing(tmp_path: Path, argv: list[str]) -> None:
    assert get_s3_files.entrypoint(argv) == 0
    before = _files(tmp_path / "lake")
    assert get_s3_files.entrypoint(argv) == 0
    assert _files(tmp_path / "lake") == before
    second, _ = _history(f"sqlite:///{tmp_path}/history.sqlite3")[0]
    assert (second.counts.rows_in, second.counts.rows_duplicate, second.counts.rows_out) == (
        2,
        2,
        0,
    )
    assert second.artifacts == ()


def test_a_conflict_fails_the_run_and_overwrite_resolves_it(
    tmp_path: Path, source: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert get_s3_files.entrypoint(argv) == 0
    (source / "agency_id=10/a.pdf").write_bytes(b"%PDF a, version 2")
    os.utime(source / "agency_id=10/a.pdf", (1709294400, 1709294400))
    capsys.readouterr()
    assert get_s3_files.entrypoint(argv) == 1
    out = capsys.readouterr()
    assert "conflicts (not copied): agency_id=10/a.pdf (destination differs" in out.out
    assert "dead-letter ratio 0.5 (1/2) exceeds --max-dead-letter-ratio 0: " in out.err
    assert "agency_id=10/a.pdf (conflict: destination differs" in out.err
    failed = _history(f"sqlite:///{tmp_path}/history.sqlite3")[0][0]
    assert failed.error is not None
    assert "agency_id=10/a.pdf (conflict: destination differs" in failed.error
    assert (failed.status, failed.counts.rows_dead_letter) == (RunStatus.FAILED, 1)
    assert len(failed.artifacts) == 1  # the manifest names the conflict
    assert get_s3_files.entrypoint([*argv, "--overwrite"]) == 0
    copied = tmp_path / "lake/bronze/agency_id=10/dt=2024-03-01/a.pdf"
    assert copied.read_bytes() == b"%PDF a, version 2"


def test_a_tolerated_conflict_lets_the_run_succeed(
    tmp_path: Path, source: Path, argv: list[str]
) -> None:
    assert get_s3_files.entrypoint(argv) == 0
    (source / "agency_id=10/a.pdf").write_bytes(b"changed")
    assert get_s3_files.entrypoint([*argv, "--max-dead-letter-ratio", "0.5"]) == 0


def test_dry_run_writes_nothing(tmp_path: Path, argv: list[str]) -> None:
    assert get_s3_files.entrypoint([*argv, "--dry-run"]) == 0
    assert not (tmp_path / "lake").exists()
    assert not (tmp_path / "history.sqlite3").exists()


def test_destination_defaults_to_the_store_and_config_supplies_options(
    tmp_path: Path, source: Path
) -> None:
    config = tmp_path / "etl.toml"
    config.write_text(
        f'store_url = "file://{tmp_path / "store"}"\n'
        f'history_url = "sqlite:///{tmp_path}/h.sqlite3"\n'
        f'[jobs.get_s3_files]\nsource_bucket = "file://{source}"\ndt = "2024-02-29"\n'
    )
    assert get_s3_files.entrypoint(["--agency-id", "10", "--config", str(config)]) == 0
    bronze = _files(tmp_path / "store" / "bronze")
    assert sorted(bronze) == [
        "agency_id=10/dt=2024-02-29/a.pdf",
        "agency_id=10/dt=2024-02-29/scans/b.png",
    ]


def test_source_prefix_and_template_select_the_documents(tmp_path: Path) -> None:
    root = tmp_path / "bucket" / "uploads" / "10"
    root.mkdir(parents=True)
    (root / "x.txt").write_bytes(b"x")
    argv = ["--agency-id", "10", "--source-bucket", f"file://{tmp_path / 'bucket'}",
            "--source-prefix", "uploads", "--source-template", "{agency_id}/",
            "--dt", "2024-01-01", "--store", str(tmp_path / "lake"),
            "--history", f"sqlite:///{tmp_path}/h.sqlite3"]  # fmt: skip
    assert get_s3_files.entrypoint(argv) == 0
    assert (tmp_path / "lake/bronze/agency_id=10/dt=2024-01-01/x.txt").read_bytes() == b"x"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--source-bucket NAME"),
        (["--source-bucket", "Not_A_Bucket"], "not a valid S3 bucket name"),
        (["--source-bucket", "file:///nonexistent/docs"], "does not exist"),
        (["--source-bucket", "docs", "--source-template", "{agency_id}"], "end with '/'"),
        (["--source-bucket", "docs", "--dt", "2024-1-8"], "expected a date YYYY-MM-DD"),
        (["--source-bucket", "docs", "--concurrency", "0"], "must be >= 1"),
    ],
)
def test_bad_options_exit_2(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert get_s3_files.entrypoint(["--agency-id", "10", *extra]) == 2
    assert message in capsys.readouterr().err


def test_agency_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert get_s3_files.entrypoint(["--source-bucket", "docs"]) == 2
    assert "an agency is required" in capsys.readouterr().err


def test_bucket_names_become_s3_urls() -> None:
    assert store_url("docs") == "s3://docs"
    assert store_url("docs/in/box") == "s3://docs/in/box"
    assert store_url("file:///srv/docs") == "file:///srv/docs"


def test_console_main_reads_sys_argv_under_its_own_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["data-pipeline-get-s3-files", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        get_s3_files.console_main()
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: data-pipeline-get-s3-files ")


def test_manifest_lists_every_listed_object(tmp_path: Path, argv: list[str]) -> None:
    assert get_s3_files.entrypoint(argv) == 0
    [manifest] = (tmp_path / "lake" / "_copies").rglob("*.json")
    document = json.loads(manifest.read_text())
    assert [entry["source_key"] for entry in document["entries"]] == [
        "agency_id=10/a.pdf",
        "agency_id=10/scans/dt=2024-01-08/b.png",
    ]


def test_the_cheap_default_template_matches_the_plans() -> None:
    from data_pipeline.copy.plan import DEFAULT_TEMPLATE

    assert configuration.DEFAULT_TEMPLATE == DEFAULT_TEMPLATE


def test_the_umbrella_runs_its_default_job_from_the_images_entrypoint_form(
    tmp_path: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `docker run IMAGE --agency-id 10 --source-bucket SRC --destination-bucket DST` with the
    # umbrella as the entrypoint: the arguments start with an option, so the default job runs.
    monkeypatch.setenv(cli.DEFAULT_JOB_ENV, "get_s3_files")

    assert cli.main(argv) == 0

    assert "bronze/agency_id=10/dt=2024-03-01/a.pdf" in _files(tmp_path / "lake")
    [run], _ = _history(f"sqlite:///{tmp_path}/history.sqlite3")
    assert (run.job, run.status) == ("get_s3_files", RunStatus.SUCCEEDED)


def test_without_a_default_job_the_umbrella_says_how_to_name_one(
    tmp_path: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.delenv(cli.DEFAULT_JOB_ENV, raising=False)

    assert cli.main(argv) == 2

    err = capsys.readouterr().err
    assert "unknown option '--agency-id': name the job first (data-pipeline run <job> --" in err
    assert f"or set {cli.DEFAULT_JOB_ENV}=<job>" in err
    assert not (tmp_path / "lake").exists()


def test_the_module_runs_as_a_script(tmp_path: Path) -> None:
    # The seed's `python -m data_pipeline.cli.get_s3_files --help` is `python -m
    # jobs.get_s3_files --help` here (README, "The seeds' invocations").
    result = subprocess.run(
        [sys.executable, "-m", "jobs.get_s3_files", "--help"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: data-pipeline-get-s3-files")
    assert "--source-bucket" in result.stdout
    assert "input rows exceeds this (0..1; default 0)" in " ".join(result.stdout.split())
