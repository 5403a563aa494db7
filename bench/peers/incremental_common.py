"""What the incremental Delta peers share: bronze listing, the folded-files list, the transform.

The transform is polars_peer's (WORKLOAD.md in Polars expressions, "approx" on edges the
generator never writes) over the lines of the new files only, deduplicated within the batch
(greatest updated_at, then later _source, then later _line), typed as the silver Delta table.
Everything here imports only polars, pyarrow and the standard library: the dlt peer runs it in
its own venv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs

from peers.polars_peer import check_lines, lines_of, name_part, read_agencies

WS: Final = " \t\r\n"
SILVER_SCHEMA: Final = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("agency_id", pa.int64(), nullable=False),
        pa.field("dt", pa.date32(), nullable=False),
        ("agency_name", pa.string()),
        ("agency_state", pa.string()),
        ("record_type", pa.string()),
        ("status", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("updated_at", pa.timestamp("us", tz="UTC")),
        ("officer_badge", pa.string()),
        ("officer_last", pa.string()),
        ("officer_first", pa.string()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("amount", pa.float64()),
        ("tags", pa.list_(pa.string())),
        ("_source", pa.string()),
        ("_line", pa.int64()),
        ("_run_id", pa.string()),
    ]
)
DEAD_SCHEMA: Final = pa.schema(
    [
        pa.field("agency_id", pa.int64(), nullable=False),
        pa.field("dt", pa.date32(), nullable=False),
        ("reason", pa.string()),
        ("source", pa.string()),
        ("line", pa.int64()),
        ("raw", pa.string()),
        ("run_id", pa.string()),
    ]
)
PARTITIONS: Final = ["agency_id", "dt"]
# when_matched_update_all's predicate: the source row is newer than the target row.
NEWER: Final = (
    "s.updated_at > t.updated_at OR (s.updated_at = t.updated_at AND"
    " (s._source > t._source OR (s._source = t._source AND s._line > t._line)))"
)
_DAY = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/")


def storage_options(url: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """delta-rs options for s3:// URLs from the standard AWS variables ({} for local paths)."""
    if not url.startswith("s3://"):
        return {}
    options = {"AWS_REGION": environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if environ.get(name):
            options[name] = environ[name]
    return options


def open_fs(url: str) -> tuple[pafs.FileSystem, str]:
    """(file system, base path) of a local directory or s3://bucket[/prefix]."""
    if not url.startswith("s3://"):
        return pafs.LocalFileSystem(), os.path.abspath(url)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    scheme, _, host = (endpoint or "https://").partition("://")
    s3 = pafs.S3FileSystem(
        endpoint_override=host or None,
        scheme=scheme,
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    return s3, url.removeprefix("s3://").rstrip("/")


def list_bronze(fs: pafs.FileSystem, base: str, agency_id: int) -> dict[str, int]:
    """source (path relative to bronze/) -> size, for the agency's bronze files."""
    root = f"{base}/bronze/agency_id={agency_id}"
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return {}
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    prefix = f"{base}/bronze/"
    return {
        info.path.removeprefix(prefix): int(info.size)
        for info in infos
        if info.type == pafs.FileType.File and info.path.endswith(".ndjson")
    }


def read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read())


def load_folded(fs: pafs.FileSystem, path: str) -> dict[str, int]:
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return {}
    folded: dict[str, int] = json.loads(read(fs, path))
    return folded


def save_folded(fs: pafs.FileSystem, path: str, folded: Mapping[str, int]) -> None:
    with fs.open_output_stream(path) as stream:
        stream.write(json.dumps(dict(sorted(folded.items())), indent=0).encode())


def to_fold(folded: Mapping[str, int], listing: Mapping[str, int]) -> tuple[list[str], bool]:
    """(files to read, rebuild): a folded file that changed size or vanished means rebuild."""
    changed = any(listing.get(source) != size for source, size in folded.items())
    if changed:
        return sorted(listing), True
    return sorted(source for source in listing if source not in folded), False


def transform(
    bodies: Mapping[str, bytes], agencies_csv: bytes, run_id: str
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """(silver survivors of the batch, dead letters, counts) of the given bronze files."""
    lines = pl.concat([lines_of(source, body) for source, body in sorted(bodies.items())])
    checked = check_lines(lines, read_agencies(agencies_csv))
    dead = checked.filter(pl.col("reason").is_not_null())
    valid = checked.filter(pl.col("reason").is_null())
    survivors = valid.sort(["updated_us", "source", "line_no"], descending=True).unique(
        ["agency_id", "record_id"], keep="first"
    )
    silver = survivors.select(**_silver_columns(run_id))
    dead_rows = dead.select(
        agency_id=pl.col("source").str.extract(r"agency_id=(\d+)/").cast(pl.Int64),
        dt=pl.col("day").str.to_date("%Y-%m-%d"),
        reason="reason",
        source="source",
        line=pl.col("line_no").cast(pl.Int64),
        raw="line",
        run_id=pl.lit(run_id),
    )
    counts = {
        "rows_in": checked.height,
        "silver_candidates": silver.height,
        "duplicates_in_batch": valid.height - silver.height,
        "dead_letter_rows": dead.height,
    }
    return _arrow(silver, SILVER_SCHEMA), _arrow(dead_rows, DEAD_SCHEMA), counts


def _silver_columns(run_id: str) -> dict[str, Any]:
    name = pl.col("name_s").str.splitn(",", 2)
    badge = pl.col("badge_s").str.strip_chars(WS).str.strip_chars_start("0")
    tags_s = pl.col("tags_s")
    tags = pl.when(tags_s.str.starts_with("[")).then(tags_s).otherwise(pl.lit("[]"))
    clean_tag = pl.element().str.strip_chars(WS).str.to_lowercase()

    def instant(seconds: pl.Expr) -> pl.Expr:
        return pl.from_epoch(seconds * 1_000_000, "us").dt.replace_time_zone("UTC")

    return {
        "record_id": pl.col("record_id"),
        "agency_id": pl.col("agency_id"),
        "dt": pl.col("day").str.to_date("%Y-%m-%d"),
        "agency_name": pl.col("name"),
        "agency_state": pl.col("state"),
        "record_type": pl.col("record_type"),
        "status": pl.col("status"),
        "occurred_at": instant(pl.col("occurred")),
        "updated_at": instant(pl.col("updated_us") // 1_000_000),
        "officer_badge": pl.when(badge == "").then(pl.lit("0")).otherwise(badge),
        "officer_last": name_part(name.struct.field("field_0")),
        "officer_first": name_part(name.struct.field("field_1")),
        "lat": pl.col("lat"),
        "lon": pl.col("lon"),
        "amount": pl.col("amount"),
        "tags": tags.str.json_decode(pl.List(pl.String)).list.eval(clean_tag),
        "_source": pl.col("source"),
        "_line": pl.col("line_no").cast(pl.Int64),
        "_run_id": pl.lit(run_id),
    }


def _arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    return frame.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(schema)


def peer_main(description: str, run: Callable[[int, str], Mapping[str, Any]]) -> NoReturn:
    """`peer --agency-id N STORE`: run, print its counts as one JSON line, and leave directly:
    delta-rs can abort at interpreter exit after merges (delta-rs issue 2184)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--agency-id", type=int, required=True)
    parser.add_argument("store")
    args = parser.parse_args(sys.argv[1:])
    counts = run(args.agency_id, args.store)
    sys.stdout.write(json.dumps(counts) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
