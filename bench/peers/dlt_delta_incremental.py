"""Peer: incremental bronze -> silver loaded by dlt (1.31) into its filesystem destination as Delta.

Runs in the benchmark's own dlt venv (incr/dlt_venv.py; dlt stays out of the project's lockfile)
with only bench/ on PYTHONPATH. The folded-files list lives in dlt's source state (committed with
each load, `_dlt_pipeline_state`); the new files go through the same Polars transform as the
Polars peer (incremental_common.transform, "approx" on edges the generator never writes); silver
is loaded with write_disposition merge/upsert on (agency_id, record_id), table_format="delta",
partitioned by agency_id, dt. dlt's upsert replaces a matched row unconditionally, so newest-wins
is done here: batch rows not newer (updated_at, then _source, then _line) than the stored row are
dropped before the load. Dead letters are appended to a second Delta table.

Tables: STORE/dlt/silver and STORE/dlt/deadletter; dlt's working directory STORE/_dlt_pipelines.

Run: python -m peers.dlt_delta_incremental --agency-id N STORE   (STORE: a local directory);
prints the run's counts as JSON.
"""

from __future__ import annotations

import contextlib
import importlib
import uuid
from collections.abc import Iterator
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from peers.incremental_common import (
    PARTITIONS,
    SILVER_SCHEMA,
    list_bronze,
    open_fs,
    peer_main,
    read,
    to_fold,
    transform,
)

DATASET = "dlt"
NEWER = (pl.col("updated_at") > pl.col("t_updated_at")) | (
    (pl.col("updated_at") == pl.col("t_updated_at"))
    & (
        (pl.col("_source") > pl.col("t_source"))
        | ((pl.col("_source") == pl.col("t_source")) & (pl.col("_line") > pl.col("t_line")))
    )
)


def _stored(uri: str, agency_id: int) -> pl.DataFrame | None:
    """The stored versions' key and ordering columns for the agency (None: no table yet)."""
    try:
        table = DeltaTable(uri)
    except TableNotFoundError:
        return None
    columns = ["record_id", "updated_at", "_source", "_line"]
    rows = table.to_pyarrow_table(columns=columns, filters=[("agency_id", "=", agency_id)])
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    return frame.rename({"updated_at": "t_updated_at", "_source": "t_source", "_line": "t_line"})


def newer_only(batch: pa.Table, stored: pl.DataFrame | None) -> pa.Table:
    """The batch rows that would replace their stored version (or have none)."""
    if stored is None or stored.height == 0:
        return batch
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    joined = frame.join(stored, on="record_id", how="left")
    kept = joined.filter(pl.col("t_line").is_null() | NEWER).select(frame.columns)
    return kept.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(SILVER_SCHEMA)


def run(agency_id: int, store: str) -> dict[str, Any]:
    dlt: Any = importlib.import_module("dlt")  # only in the dlt venv
    fs, base = open_fs(store)
    pipeline = dlt.pipeline(
        pipeline_name=f"silver_agency_{agency_id}",
        destination=dlt.destinations.filesystem(bucket_url=base),
        dataset_name=DATASET,
        pipelines_dir=f"{base}/_dlt_pipelines",
    )
    counts: dict[str, Any] = {}

    def bronze() -> Any:
        state = dlt.current.source_state()
        listing = list_bronze(fs, base, agency_id)
        sources, rebuild = to_fold(state.get("folded", {}), listing)
        counts.update(files=len(sources), rebuild=int(rebuild))
        if rebuild:
            for name in ("silver", "deadletter"):
                with contextlib.suppress(TableNotFoundError):
                    DeltaTable(f"{base}/{DATASET}/{name}").delete(f"agency_id = {agency_id}")
            state["folded"] = {}
        silver = dead = None
        if sources:
            bodies = {source: read(fs, f"{base}/bronze/{source}") for source in sources}
            agencies = read(fs, f"{base}/agencies.csv")
            batch, dead, batch_counts = transform(bodies, agencies, uuid.uuid4().hex)
            silver = newer_only(batch, _stored(f"{base}/{DATASET}/silver", agency_id))
            counts.update(batch_counts, loaded_silver_rows=silver.num_rows)

        def silver_rows() -> Iterator[pa.Table]:
            if silver is not None and silver.num_rows:
                yield silver
            folded = dlt.current.source_state().setdefault("folded", {})
            folded.update({source: listing[source] for source in sources})

        def dead_rows() -> Iterator[pa.Table]:
            if dead is not None and dead.num_rows:
                yield dead

        partitioned = {name: {"partition": True} for name in PARTITIONS}
        return [
            dlt.resource(
                silver_rows,
                name="silver",
                primary_key=["agency_id", "record_id"],
                write_disposition={"disposition": "merge", "strategy": "upsert"},
                table_format="delta",
                columns=partitioned,
            ),
            dlt.resource(
                dead_rows,
                name="deadletter",
                write_disposition="append",
                table_format="delta",
                columns=partitioned,
            ),
        ]

    info = pipeline.run(dlt.source(name="bronze")(bronze)())
    counts["load_packages"] = len(info.load_packages)
    return counts


if __name__ == "__main__":
    peer_main(__doc__.splitlines()[0], run)
