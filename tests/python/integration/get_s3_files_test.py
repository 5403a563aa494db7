"""get_s3_files between two buckets on moto's S3 server (real HTTP on loopback, no patching)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history
from etl_core.model import RunRecord, RunStatus

# Imported, not only run: so the build's dependency inference ships the job and the CLI with
# the test, and the subprocess finds them on PYTHONPATH.
from jobs import cli, get_s3_files

SRC = Path(__file__).resolve().parents[3] / "src" / "python"
MIB = 1 << 20
BIG = bytes(range(256)) * (6 * MIB // 256)  # uploaded in two parts: a multipart etag

DOCS = {
    "agency_id=10/a.pdf": b"%PDF-1.7 agency 10 a",
    "agency_id=10/scans/dt=2024-01-08/b.png": b"\x89PNG b",
    "agency_id=1/x.pdf": b"agency 1",
    "agency_id=100/y.pdf": b"agency 100",
}
FOREIGN = "bronze/agency_id=1/dt=2024-01-01/keep.pdf"  # another agency's bronze: left alone


@pytest.fixture()
def s3_endpoint(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # The adapter finds the endpoint through the standard AWS chain, like in production.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    return moto_url


def _new_bucket(s3: Any, role: str) -> str:
    name = f"{role}-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture()
def buckets(s3: Any) -> tuple[str, str]:
    source, destination = _new_bucket(s3, "docs"), _new_bucket(s3, "lake")
    for key, body in DOCS.items():
        s3.put_object(Bucket=source, Key=key, Body=body)
    s3.put_object(Bucket=source, Key="agency_id=10/empty-folder/", Body=b"")
    parts = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_fileobj(io.BytesIO(BIG), source, "agency_id=10/big.bin", Config=parts)
    s3.put_object(Bucket=destination, Key=FOREIGN, Body=b"keep me")
    return source, destination


def _objects(s3: Any, bucket: str) -> dict[str, tuple[str, Any]]:
    """key -> (etag, last modified) of every object."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {
        item["Key"]: (item["ETag"], item["LastModified"])
        for page in pages
        for item in page.get("Contents", [])
    }


def _body(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


async def _runs(url: str) -> list[RunRecord]:
    async with open_run_history(url, every_history()) as history:
        return await history.list_runs(job="get_s3_files")


async def _job(*argv: str) -> int:
    # entrypoint runs its own event loop: keep it off the test's.
    return await asyncio.to_thread(get_s3_files.entrypoint, list(argv))


async def test_copy_is_idempotent_reports_conflicts_and_leaves_other_agencies_alone(
    s3_endpoint: str, s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    source, destination = buckets
    history = f"sqlite:///{tmp_path}/history.sqlite3"
    argv = ["--agency-id", "10", "--source-bucket", source, "--destination-bucket", destination,
            "--history", history, "--log-format", "json", "--concurrency", "4"]  # fmt: skip
    assert s3.head_object(Bucket=source, Key="agency_id=10/big.bin")["ETag"].endswith('-2"')
    source_before = _objects(s3, source)

    assert await _job(*argv) == 0
    copied = _objects(s3, destination)
    day = s3.head_object(Bucket=source, Key="agency_id=10/a.pdf")["LastModified"].date()
    expected = {
        f"bronze/agency_id=10/dt={day}/a.pdf": DOCS["agency_id=10/a.pdf"],
        f"bronze/agency_id=10/dt={day}/big.bin": BIG,
        "bronze/agency_id=10/dt=2024-01-08/scans/b.png": DOCS[
            "agency_id=10/scans/dt=2024-01-08/b.png"
        ],
    }
    [first] = await _runs(history)
    manifest = f"_copies/get_s3_files/agency_id=10/{first.run_id}.json"
    assert set(copied) == {*expected, manifest, FOREIGN}
    for key, body in expected.items():
        assert _body(s3, destination, key) == body
    assert (first.status, first.counts.rows_in, first.counts.rows_out) == (
        RunStatus.SUCCEEDED,
        3,
        3,
    )
    assert first.counts.bytes_out == sum(len(body) for body in expected.values())
    assert first.artifacts == (manifest,)
    entries = json.loads(_body(s3, destination, manifest))["entries"]
    assert {entry["action"] for entry in entries} == {"copied"}

    # Second run: everything already there, the multipart-etag object included; nothing written.
    assert await _job(*argv) == 0
    second = (await _runs(history))[0]
    assert (second.counts.rows_in, second.counts.rows_duplicate, second.counts.rows_out) == (
        3,
        3,
        0,
    )
    assert second.artifacts == ()
    assert _objects(s3, destination) == copied

    # A changed source document is a conflict: reported, not copied, the run fails ...
    s3.put_object(Bucket=source, Key="agency_id=10/a.pdf", Body=b"%PDF-1.7 agency 10 a, v2")
    assert await _job(*argv) == 1
    third = (await _runs(history))[0]
    assert third.status is RunStatus.FAILED
    assert (third.counts.rows_dead_letter, third.counts.rows_duplicate) == (1, 2)
    unchanged = _body(s3, destination, f"bronze/agency_id=10/dt={day}/a.pdf")
    assert unchanged == DOCS["agency_id=10/a.pdf"]

    # ... and --overwrite re-copies it, and only it.
    assert await _job(*argv, "--overwrite") == 0
    fourth = (await _runs(history))[0]
    assert (fourth.counts.rows_out, fourth.counts.rows_duplicate) == (1, 2)
    assert _body(s3, destination, f"bronze/agency_id=10/dt={day}/a.pdf").endswith(b", v2")

    # Other agencies: nothing copied from the source, the foreign bronze object untouched.
    final = _objects(s3, destination)
    assert not [key for key in final if "agency_id=100" in key]
    assert [key for key in final if "agency_id=1/" in key] == [FOREIGN]
    assert final[FOREIGN] == copied[FOREIGN]
    source_after = _objects(s3, source)
    for key in ("agency_id=1/x.pdf", "agency_id=100/y.pdf", "agency_id=10/big.bin"):
        assert source_after[key] == source_before[key]


async def test_a_missing_source_bucket_fails_the_run(
    s3_endpoint: str, s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    destination = _new_bucket(s3, "lake")
    history = f"sqlite:///{tmp_path}/history.sqlite3"
    code = await _job("--agency-id", "10", "--source-bucket", "no-such-bucket-here",
                      "--destination-bucket", destination, "--history", history)  # fmt: skip
    assert code == 1
    assert "bucket 'no-such-bucket-here' does not exist" in capsys.readouterr().err
    [run] = await _runs(history)
    assert run.status is RunStatus.FAILED
    assert _objects(s3, destination) == {}


def _python(cwd: Path, moto_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        # This interpreter's own path too, so third-party packages resolve under a PEX as well.
        "PYTHONPATH": os.pathsep.join([str(SRC), *(p for p in sys.path if p)]),
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_subprocess_runs_the_job_and_lists_the_run(
    moto_url: str, s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    source, destination = buckets
    assert cli.PROG == "data-pipeline"
    common = ["--agency-id", "10", "--source-bucket", source, "--destination-bucket", destination,
              "--log-format", "json"]  # fmt: skip
    result = _python(tmp_path, moto_url, "-m", "jobs.cli", "run", "get_s3_files", "--", *common)
    assert result.returncode == 0, result.stderr
    assert "get_s3_files run " in result.stdout
    assert "succeeded" in result.stdout
    # The console script's own entry (what the data-pipeline-get-s3-files PEX runs): a re-run.
    again = _python(tmp_path, moto_url, "-m", "jobs.get_s3_files", *common)
    assert again.returncode == 0, again.stderr
    assert "already present (skipped): 3" in again.stdout
    # The run history defaults to ./.etl/ in the working directory; both runs are in it.
    runs = _python(tmp_path, moto_url, "-m", "jobs.cli", "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    listed = json.loads(runs.stdout)
    assert [(run["job"], run["status"], run["agency_id"]) for run in listed] == [
        ("get_s3_files", "succeeded", 10),
        ("get_s3_files", "succeeded", 10),
    ]
    assert [run["counts"]["rows_out"] for run in listed] == [0, 3]
    assert "bronze/agency_id=10/dt=2024-01-08/scans/b.png" in _objects(s3, destination)
