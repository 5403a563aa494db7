"""The expected silver and dead letters of a set of bronze files, from the independent reference.

Every line goes through tests/python/e2e/reference_transform.py's own validation and
normalisation (parse_object, to_silver: plain Python written from WORKLOAD.md); only the dedupe
of WORKLOAD.md step 2 (greatest updated_at, then later source path, then later line) is done
here, in Polars, so a file's rows can be computed once (in parallel, cached as Parquet beside the
dataset) and any subset of files combined: the D days of a full build, D+1 after the next day.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import inspect
import multiprocessing
import os
from pathlib import Path
from typing import Any

import attrs
import polars as pl
from e2e import reference_transform as ref

KEY = ["agency_id", "record_id"]
SILVER_COLUMNS = [
    "record_id", "agency_id", "dt", "agency_name", "agency_state", "record_type", "status",
    "occurred_at", "updated_at", "officer_badge", "officer_last", "officer_first", "lat", "lon",
    "amount", "tags", "_source", "_line",
]  # fmt: skip
UTC_US = pl.Datetime("us", "UTC")
SILVER_SCHEMA: dict[str, Any] = {
    "record_id": pl.String, "agency_id": pl.Int64, "dt": pl.Date, "agency_name": pl.String,
    "agency_state": pl.String, "record_type": pl.String, "status": pl.String,
    "occurred_at": UTC_US, "updated_at": UTC_US, "officer_badge": pl.String,
    "officer_last": pl.String, "officer_first": pl.String, "lat": pl.Float64,
    "lon": pl.Float64, "amount": pl.Float64, "tags": pl.List(pl.String), "_source": pl.String,
    "_line": pl.Int64,
}  # fmt: skip
DEAD_COLUMNS = ["reason", "source", "line"]
DEAD_SCHEMA: dict[str, Any] = {"reason": pl.String, "source": pl.String, "line": pl.Int64}


@attrs.frozen
class Expected:
    silver: pl.DataFrame  # SILVER_COLUMNS, unique by KEY
    dead: pl.DataFrame  # DEAD_COLUMNS
    rows_in: int


def _cache_dir(root: Path) -> Path:
    digest = hashlib.sha256(inspect.getsource(ref).encode())
    digest.update(inspect.getsource(_file_frames).encode())
    return root / ".reference" / digest.hexdigest()[:12]


def _instant(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _file_frames(root: str, key: str, out: str) -> None:
    """The reference's rows of one file (valid rows before dedupe, dead letters) as Parquet."""
    agencies = ref.read_agencies((Path(root) / "agencies.csv").read_bytes())
    source = key.removeprefix("bronze/")
    day = ref.DT_RE.search("/" + source)
    assert day is not None, key
    rows: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    for number, line in enumerate((Path(root) / key).read_bytes().split(b"\n"), start=1):
        if line.strip(ref.TRIM.encode()) == b"":
            continue
        try:
            row = ref.to_silver(ref.parse_object(line), day.group(1), agencies)
        except ref.Invalid as invalid:
            dead.append({"reason": invalid.reason, "source": source, "line": number})
            continue
        updated = row.pop("_updated")
        row |= {"_source": source, "_line": number, "_updated_us": _micros(updated)}
        row["dt"] = dt.date.fromisoformat(row["dt"])
        row["occurred_at"] = _instant(row["occurred_at"])
        row["updated_at"] = _instant(row["updated_at"])
        rows.append(row)
    schema = {**SILVER_SCHEMA, "_updated_us": pl.Int64}
    pl.DataFrame(rows, schema=schema).write_parquet(f"{out}.silver.parquet")
    pl.DataFrame(dead, schema=DEAD_SCHEMA).write_parquet(f"{out}.dead.parquet")


def _micros(moment: dt.datetime) -> int:
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Reference:
    """Expected outputs of subsets of one dataset's bronze files (keys relative to root)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = _cache_dir(root)

    def _path(self, key: str) -> Path:
        return self.cache / key.replace("/", "__")

    def prepare(self, keys: tuple[str, ...]) -> None:
        """Compute (in parallel) the per-file frames not cached yet."""
        missing = [k for k in keys if not Path(f"{self._path(k)}.dead.parquet").exists()]
        if not missing:
            return
        self.cache.mkdir(parents=True, exist_ok=True)
        workers = min(len(missing), os.cpu_count() or 1)
        context = multiprocessing.get_context("spawn")  # the bench runs moto in a thread
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [
                pool.submit(_file_frames, str(self.root), key, str(self._path(key)))
                for key in missing
            ]
            for future in futures:
                future.result()

    def expected(self, keys: tuple[str, ...]) -> Expected:
        """WORKLOAD.md's silver and dead letters of all those files at once."""
        self.prepare(keys)
        rows = pl.concat([pl.read_parquet(f"{self._path(k)}.silver.parquet") for k in keys])
        dead = pl.concat([pl.read_parquet(f"{self._path(k)}.dead.parquet") for k in keys])
        silver = (
            rows.sort([*KEY, "_updated_us", "_source", "_line"])
            .unique(KEY, keep="last", maintain_order=True)
            .select(SILVER_COLUMNS)
        )
        return Expected(silver, dead, rows.height + dead.height)
