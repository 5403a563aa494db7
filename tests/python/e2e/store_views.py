"""Read a local store the way any reader does: through the Delta tables' committed versions."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

View = tuple[tuple[str, ...], tuple[tuple[str, str, str], ...]]
"""(silver rows as JSON, dead letters as (reason, source, raw)), each sorted."""

SILVER_FIELDS = (
    "record_id", "agency_id", "dt", "agency_name", "agency_state", "record_type", "status",
    "occurred_at", "updated_at", "officer_badge", "officer_last", "officer_first", "lat", "lon",
    "amount", "tags",
)  # fmt: skip


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The `  key: value` lines of the run summary on stdout."""
    fields = {}
    for line in result.stdout.splitlines():
        if line.startswith("  ") and ": " in line:
            key, _, value = line.strip().partition(": ")
            fields[key] = value
    return fields


def _table(root: Path, name: str, agency_id: int | None) -> list[dict[str, Any]]:
    path = root / name
    if not (path / "_delta_log").is_dir():
        return []
    partitions = None if agency_id is None else [("agency_id", "=", agency_id)]
    rows: list[dict[str, Any]] = (
        DeltaTable(str(path)).to_pyarrow_table(filters=partitions).to_pylist()
    )
    return rows


def silver_rows(root: Path, agency_id: int | None = None) -> list[dict[str, Any]]:
    """Silver as any Delta reader sees it (only committed rows), as the reference shows rows:
    timestamps as `YYYY-MM-DDTHH:MM:SSZ`, dt as text, no lineage columns."""
    rows = []
    for row in _table(root, "silver", agency_id):
        shown = {
            key: (
                value.strftime("%Y-%m-%dT%H:%M:%SZ")
                if isinstance(value, dt.datetime)
                else value.isoformat()
                if isinstance(value, dt.date)
                else value
            )
            for key, value in row.items()
            if not key.startswith("_")
        }
        rows.append({name: shown[name] for name in SILVER_FIELDS})
    return sorted(rows, key=lambda row: (row["agency_id"], row["record_id"]))


def dead_letter_rows(root: Path, agency_id: int | None = None) -> list[dict[str, Any]]:
    """The committed dead-letter rows."""
    return _table(root, "deadletter", agency_id)


def view(root: Path, agency_id: int) -> View:
    """What readers see of the agency: silver rows and dead letters as (reason, source, raw),
    each sorted, whatever the split into files."""
    silver = tuple(sorted(json.dumps(row, sort_keys=True) for row in silver_rows(root, agency_id)))
    dead = tuple(
        sorted((r["reason"], r["source"], r["raw"]) for r in dead_letter_rows(root, agency_id))
    )
    return silver, dead


def snapshot(root: Path) -> dict[str, int]:
    """Every file (in-flight temp files too) -> mtime_ns."""
    return {
        path.relative_to(root).as_posix(): path.stat().st_mtime_ns
        for path in root.rglob("*")
        if path.is_file()
    }
