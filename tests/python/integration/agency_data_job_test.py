"""agency_data_job as a subprocess: silver tables on S3 (moto) after bronze_to_silver, PostgreSQL
and HTTP record sources, S3 artifacts, PostgreSQL history."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import functools
import io
import json
import urllib.parse
import zoneinfo
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from data_pipeline.export.csv_format import csv_cells
from data_pipeline.silver.agencies import parse_agencies
from data_pipeline.silver.dedupe import Deduper
from data_pipeline.silver.file_transform import transform_file
from data_pipeline.workload.generate import WorkloadOptions, iter_workload_files
from deltalake import DeltaTable
from etl_core.adapters.every_history import every_history
from etl_core.adapters.run_histories import open_run_history

# Imported, not only run: dependency inference then ships the job with this test.
from jobs import (
    agency_data_job,  # noqa: F401
    bronze_to_silver,
)

from integration.cli_support import cli_async
from integration.http_support import TOKEN, ApiServer

WORKLOAD = WorkloadOptions(records=2000, files=8, agencies=4, bad_rate=0.03, dup_rate=0.1, seed=13)
AGENCY = 2
RUN_ID = "it-export-1"
PREFIX = f"lake/exports/agency_id={AGENCY}/run_id={RUN_ID}/"


@functools.cache
def _files() -> dict[str, bytes]:
    return dict(iter_workload_files(WORKLOAD))


def _with_password(dsn: str) -> tuple[str, str]:
    """dsn with a password (ignored under trust auth) to prove it is never shown; the password."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.password:
        return dsn, parts.password
    netloc = f"{parts.username or 'postgres'}:n0t-sh0wn@{parts.hostname}:{parts.port or 5432}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), "n0t-sh0wn"


async def _fill_source_table(dsn: str, schema: str) -> int:
    """Every bronze line of the workload as a row (agency, raw text line), in file order."""
    rows = [
        (int(key.split("agency_id=")[1].split("/")[0]), line.decode())
        for key, body in sorted(_files().items())
        if key.startswith("bronze/")
        for line in body.split(b"\n")
        if line
    ]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f'CREATE TABLE "{schema}".bronze_rows (id BIGSERIAL PRIMARY KEY,'
            f" agency_id BIGINT NOT NULL, line TEXT NOT NULL);"
            f' CREATE INDEX ON "{schema}".bronze_rows (agency_id, id)'
        )
        await conn.copy_records_to_table(
            "bronze_rows", schema_name=schema, records=rows, columns=["agency_id", "line"]
        )
    finally:
        await conn.close()
    return len(rows)


def _expected_rows() -> list[dict[str, Any]]:
    """The bronze transform of the agency's files, dt being the agency-local occurred_at date
    (rows from a table have no file: see data_pipeline.ingest.records)."""
    agencies = parse_agencies(_files()["agencies.csv"])
    deduper = Deduper()
    for key, body in sorted(_files().items()):
        if key.startswith(f"bronze/agency_id={AGENCY}/"):
            deduper.add(transform_file(key, body, agencies))
    zone = zoneinfo.ZoneInfo(agencies[AGENCY].timezone)
    rows = []
    for row in (json.loads(line) for line in deduper):
        occurred = dt.datetime.fromisoformat(row["occurred_at"].replace("Z", "+00:00"))
        rows.append({**row, "dt": occurred.astimezone(zone).date().isoformat()})
    return rows


def _get(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _table(bucket: str, name: str, moto_url: str) -> list[dict[str, Any]]:
    """Agency AGENCY's committed rows of the Delta table `name` of the store s3://bucket/lake."""
    options = {"AWS_ENDPOINT_URL": moto_url, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}
    table = DeltaTable(f"s3://{bucket}/lake/{name}", storage_options=options)
    return list(table.to_pyarrow_table(filters=[("agency_id", "=", AGENCY)]).to_pylist())


def _silver_as_exported(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Silver rows as the export writes them: no lineage, text instants and dt, by record_id."""
    shaped = []
    for row in rows:
        shaped.append(
            {
                **{name: value for name, value in row.items() if not name.startswith("_")},
                "dt": row["dt"].isoformat(),
                "occurred_at": row["occurred_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "updated_at": row["updated_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return sorted(shaped, key=lambda row: row["record_id"])


@pytest.fixture()
def s3_endpoint(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)  # the subprocess inherits it
    return moto_url


async def test_export_from_the_silver_tables_on_s3_after_bronze_to_silver(
    tmp_path: Path, s3_endpoint: str, s3: Any, bucket: str, pg_dsn: str, pg_schema: str
) -> None:
    for key, body in _files().items():
        s3.put_object(Bucket=bucket, Key=f"lake/{key}", Body=body)
    store, history = f"s3://{bucket}/lake", f"{pg_dsn}?schema={pg_schema}"
    promote = ["--agency-id", str(AGENCY), "--store", store, "--history", history,
               "--workers", "1", "--run-id", "it-b2s", "--log-format", "json"]  # fmt: skip
    # In process, on a thread of its own: the job runs its own event loop.
    assert await asyncio.to_thread(bronze_to_silver.entrypoint, promote) == 0

    result = await cli_async(
        tmp_path, "run", "agency_data_job", "--", "--agency-id", str(AGENCY),
        "--store", store, "--history", history, "--run-id", RUN_ID, "--log-format", "json",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="lake/exports/")["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        PREFIX + name
        for name in ("deadletter.ndjson", "manifest.json", "records.csv", "records.ndjson")
    ]
    silver = _table(bucket, "silver", s3_endpoint)
    records = [
        json.loads(line) for line in _get(s3, bucket, PREFIX + "records.ndjson").splitlines()
    ]
    assert records == _silver_as_exported(silver)
    header, *csv_rows = csv.reader(io.StringIO(_get(s3, bucket, PREFIX + "records.csv").decode()))
    assert header[:3] == ["record_id", "agency_id", "dt"]
    assert csv_rows == [csv_cells(row) for row in records]
    table_dead = sorted(
        _table(bucket, "deadletter", s3_endpoint), key=lambda row: (row["source"], row["line"])
    )
    dead = [
        json.loads(line) for line in _get(s3, bucket, PREFIX + "deadletter.ndjson").splitlines()
    ]
    assert dead == [
        {"reason": row["reason"], "source": row["source"], "raw": row["raw"], "run_id": "it-b2s",
         "detail": row["detail"]}
        for row in table_dead
    ]  # fmt: skip
    expected = json.loads(_files()["manifest.json"])["agencies"][str(AGENCY)]
    async with open_run_history(history, every_history()) as runs:
        run = await runs.get_run(RUN_ID)
        [ledger] = await runs.partitions(RUN_ID)
    assert (run.status.value, run.job) == ("succeeded", "agency_data_job")
    assert (run.counts.rows_out, run.counts.rows_dead_letter, run.counts.rows_duplicate) == (
        expected["silver_rows"], expected["dead_letter_rows"], 0
    )  # fmt: skip
    assert run.counts.rows_in == len(silver) + len(table_dead)
    assert (ledger.input_fingerprint, ledger.counts) == ("fold-1", run.counts)
    assert run.parameters["source"] == "silver and dead-letter tables of the store"


async def test_an_agency_with_nothing_in_silver_fails_without_uploading(
    tmp_path: Path, s3_endpoint: str, s3: Any, bucket: str, pg_dsn: str, pg_schema: str
) -> None:
    for key, body in _files().items():  # bronze only: bronze_to_silver never ran
        s3.put_object(Bucket=bucket, Key=f"lake/{key}", Body=body)
    history = f"{pg_dsn}?schema={pg_schema}"

    result = await cli_async(
        tmp_path, "run", "agency_data_job", "--", "--agency-id", str(AGENCY),
        "--store", f"s3://{bucket}/lake", "--history", history, "--run-id", "it-export-3",
        "--log-format", "json",
    )  # fmt: skip

    assert result.returncode == 1
    assert f"agency {AGENCY}: nothing in silver for this agency" in result.stderr
    assert f"run bronze_to_silver --agency-id {AGENCY} first" in result.stderr
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="lake/exports/")
    async with open_run_history(history, every_history()) as runs:
        run = await runs.get_run("it-export-3")
    assert run.status.value == "failed"


async def test_export_from_postgres_to_s3_with_a_postgres_history(
    tmp_path: Path, s3_endpoint: str, s3: Any, bucket: str, pg_dsn: str, pg_schema: str
) -> None:
    await _fill_source_table(pg_dsn, pg_schema)
    s3.put_object(Bucket=bucket, Key="lake/agencies.csv", Body=_files()["agencies.csv"])
    source, password = _with_password(f"{pg_dsn}?schema={pg_schema}")
    history = f"{pg_dsn}?schema={pg_schema}"

    result = await cli_async(
        tmp_path, "run", "agency_data_job", "--", "--agency-id", str(AGENCY),
        "--source", source, "--source-table", "bronze_rows", "--source-record-column", "line",
        "--batch-size", "128", "--store", f"s3://{bucket}/lake", "--history", history,
        "--run-id", RUN_ID, "--log-format", "json",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr
    # Artifacts, write-once under the run's prefix, manifest last.
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="lake/exports/")["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        PREFIX + name
        for name in ("deadletter.ndjson", "manifest.json", "records.csv", "records.ndjson")
    ]
    records = [
        json.loads(line) for line in _get(s3, bucket, PREFIX + "records.ndjson").splitlines()
    ]
    assert records == _expected_rows()
    header, *csv_rows = csv.reader(io.StringIO(_get(s3, bucket, PREFIX + "records.csv").decode()))
    assert header[:3] == ["record_id", "agency_id", "dt"]
    assert csv_rows == [csv_cells(row) for row in records]
    expected = json.loads(_files()["manifest.json"])["agencies"][str(AGENCY)]
    dead = [
        json.loads(line) for line in _get(s3, bucket, PREFIX + "deadletter.ndjson").splitlines()
    ]
    assert len(dead) == expected["dead_letter_rows"] > 0
    assert {row["reason"] for row in dead} == {r for r, n in expected["dead_letter"].items() if n}
    assert all(
        row["run_id"] == RUN_ID and row["source"].startswith("postgresql://") for row in dead
    )
    assert all(password not in row["source"] for row in dead)
    manifest = json.loads(_get(s3, bucket, PREFIX + "manifest.json"))
    assert manifest["counts"]["rows_out"] == expected["silver_rows"]
    # The run and its ledger row in the PostgreSQL history.
    async with open_run_history(history, every_history()) as runs:
        run = await runs.get_run(RUN_ID)
        [ledger] = await runs.partitions(RUN_ID)
    assert (run.status.value, run.job, run.agency_id) == ("succeeded", "agency_data_job", AGENCY)
    assert run.counts.rows_in == expected["input_rows"]
    assert run.counts.rows_out == expected["silver_rows"]
    assert run.counts.rows_duplicate == expected["duplicates"]
    assert run.counts.rows_dead_letter == expected["dead_letter_rows"]
    assert run.counts.bytes_out == sum(item["Size"] for item in listed) - len(
        _get(s3, bucket, PREFIX + "manifest.json")
    )
    assert run.artifacts == tuple(
        f"exports/agency_id={AGENCY}/run_id={RUN_ID}/{name}"
        for name in ("records.csv", "records.ndjson", "deadletter.ndjson", "manifest.json")
    )
    assert run.finished_at is not None
    assert run.duration is not None
    assert password not in json.dumps(run.parameters)
    assert run.parameters["source_url"].startswith("postgresql://postgres:***@")
    assert (ledger.partition, ledger.counts) == (f"agency_id={AGENCY}", run.counts)


async def test_an_unreachable_source_fails_the_run_without_uploading(
    tmp_path: Path, s3_endpoint: str, s3: Any, bucket: str, pg_dsn: str, pg_schema: str
) -> None:
    s3.put_object(Bucket=bucket, Key="lake/agencies.csv", Body=_files()["agencies.csv"])
    history = f"{pg_dsn}?schema={pg_schema}"

    result = await cli_async(
        tmp_path, "run", "agency_data_job", "--", "--agency-id", str(AGENCY),
        "--source", f"{pg_dsn}?schema={pg_schema}", "--source-table", "no_such_table",
        "--store", f"s3://{bucket}/lake", "--history", history, "--run-id", "it-export-2",
        "--log-format", "json",
    )  # fmt: skip

    assert result.returncode == 1
    assert "source table" in result.stderr
    assert "does not exist" in result.stderr
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="lake/exports/")
    async with open_run_history(history, every_history()) as runs:
        run = await runs.get_run("it-export-2")
    assert run.status.value == "failed"
    assert run.error is not None
    assert "no_such_table" in run.error


async def test_export_from_an_http_api_with_credentials_from_the_environment(
    tmp_path: Path,
) -> None:
    served = []  # an API serves objects only: the workload's lines that are not JSON are gone
    for key, body in sorted(_files().items()):
        if key.startswith(f"bronze/agency_id={AGENCY}/"):
            for line in body.splitlines():
                try:
                    served.append(json.loads(line))
                except ValueError:
                    continue
    (tmp_path / "agencies.csv").write_bytes(_files()["agencies.csv"])
    api = ApiServer(records={AGENCY: served}, page_size=50)
    await api.start()
    try:
        result = await cli_async(
            tmp_path, "run", "agency_data_job", "--", "--agency-id", str(AGENCY),
            "--source", f"{api.url}/pages", "--paging", "page", "--page-size", "50",
            "--auth-env", "ETL_TEST_EXPORT_TOKEN", "--agencies", str(tmp_path / "agencies.csv"),
            "--store", str(tmp_path / "out"), "--history", f"sqlite:///{tmp_path}/h.sqlite3",
            "--run-id", "it-http", "--log-format", "json",
            env={"ETL_TEST_EXPORT_TOKEN": TOKEN},
        )  # fmt: skip
    finally:
        await api.stop()

    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    expected = json.loads(_files()["manifest.json"])["agencies"][str(AGENCY)]
    export = tmp_path / f"out/exports/agency_id={AGENCY}/run_id=it-http"
    records = [json.loads(line) for line in (export / "records.ndjson").read_text().splitlines()]
    assert records == _expected_rows()
    dead = (export / "deadletter.ndjson").read_text().splitlines()
    assert len(dead) == expected["dead_letter_rows"] - expected["dead_letter"]["invalid_json"]
    assert len(served) == len(records) + expected["duplicates"] + len(dead)
