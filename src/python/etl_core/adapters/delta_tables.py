"""Open the silver and dead-letter Delta tables of an object store URL (WORKLOAD.md "Tables")."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from etl_core.adapters.delta_dead_letter_table import DeltaDeadLetterTable
from etl_core.adapters.delta_files import DeltaFiles
from etl_core.adapters.delta_silver_table import DEFAULT_ROWS_PER_FILE, DeltaSilverTable
from etl_core.ports import ObjectStore
from etl_core.urls import parse_store_url

SILVER = "silver"
DEADLETTER = "deadletter"


@attrs.frozen
class Tables:
    """The two tables a bronze -> silver run commits to."""

    silver: DeltaSilverTable
    deadletter: DeltaDeadLetterTable


def table_uri(store_url: str, name: str) -> str:
    """The Delta URI of table `name` in the store at store_url (file path or s3://)."""
    parsed = parse_store_url(store_url)
    if parsed.kind == "file":
        assert parsed.path is not None
        return str((parsed.path / name).absolute())
    prefix = f"{parsed.prefix}/" if parsed.prefix else ""
    return f"s3://{parsed.bucket}/{prefix}{name}"


def storage_options(store_url: str, environ: Mapping[str, str]) -> dict[str, str]:
    """delta-rs' options for the store: S3 endpoint and region from the standard AWS variables
    (credentials stay with delta-rs' own AWS chain). Never logged: they may name an endpoint."""
    if parse_store_url(store_url).kind == "file":
        return {}
    options: dict[str, str] = {}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    options["AWS_REGION"] = region or "us-east-1"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if environ.get(name):
            options[name] = environ[name]
    return options


def open_tables(
    store_url: str,
    store: ObjectStore,
    environ: Mapping[str, str],
    *,
    dry_run: bool = False,
    run_id: str | None = None,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
) -> Tables:
    """The store's silver and dead-letter tables; their data files are written through store."""
    options = storage_options(store_url, environ)

    def files(name: str) -> DeltaFiles:
        return DeltaFiles(table_uri(store_url, name), options, store, name, name)

    return Tables(
        silver=DeltaSilverTable(
            files(SILVER), rows_per_file=rows_per_file, dry_run=dry_run, run_id=run_id
        ),
        deadletter=DeltaDeadLetterTable(files(DEADLETTER), dry_run=dry_run, run_id=run_id),
    )
