"""Peer: incremental bronze -> silver with Polars + deltalake (delta-rs), written by hand.

Reads only the agency's bronze files not folded in before (its own list, STORE/_polars_folded/
agency_id=N.json, written after the Delta commits), transforms them with polars_peer's expressions
(incremental_common.transform: "approx" on edges the generator never writes), and merges the
batch's survivors into STORE/silver with DeltaTable.merge: predicate `t.agency_id = <literal> AND
t.record_id = s.record_id`, matched rows updated only when the source row is newer (updated_at,
then _source, then _line), unmatched rows inserted. The first run (no table) writes instead of
merging. Dead letters are appended to STORE/deadletter. A folded file that changed or vanished
rebuilds the agency: its rows are deleted from both tables and all its bronze is folded again.

Run: python -m peers.polars_delta_incremental --agency-id N STORE   (STORE: a directory or
s3://bucket[/prefix], AWS_* variables for S3); prints the run's counts as JSON.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from peers.incremental_common import (
    NEWER,
    PARTITIONS,
    list_bronze,
    load_folded,
    open_fs,
    peer_main,
    read,
    save_folded,
    storage_options,
    to_fold,
    transform,
)


def _table(uri: str, options: dict[str, str]) -> DeltaTable | None:
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        return None


def merge_silver(
    uri: str, options: dict[str, str], agency_id: int, batch: pa.Table
) -> dict[str, int]:
    """Merge the batch's survivors (unique per record_id) into silver; the merge's metrics."""
    table = _table(uri, options)
    if table is None:
        write_deltalake(uri, batch, partition_by=PARTITIONS, storage_options=options)
        return {"num_target_rows_inserted": batch.num_rows}
    metrics = (
        table.merge(
            source=batch,
            predicate=f"t.agency_id = {int(agency_id)} AND t.record_id = s.record_id",
            source_alias="s",
            target_alias="t",
        )
        .when_matched_update_all(predicate=NEWER)
        .when_not_matched_insert_all()
        .execute()
    )
    return {k: int(v) for k, v in metrics.items() if k.startswith("num_target_rows")}


def run(agency_id: int, store: str) -> dict[str, int]:
    fs, base = open_fs(store)
    prefix = "s3://" + base if store.startswith("s3://") else base
    options = storage_options(store)
    state = f"{base}/_polars_folded/agency_id={agency_id}.json"
    fs.create_dir(f"{base}/_polars_folded", recursive=True)
    folded = load_folded(fs, state)
    listing = list_bronze(fs, base, agency_id)
    sources, rebuild = to_fold(folded, listing)
    counts = {"files": len(sources), "rebuild": int(rebuild)}
    if rebuild:
        for name in ("silver", "deadletter"):
            table = _table(f"{prefix}/{name}", options)
            if table is not None:
                table.delete(f"agency_id = {int(agency_id)}")
        folded = {}
    if sources:
        bodies = {source: read(fs, f"{base}/bronze/{source}") for source in sources}
        agencies = read(fs, f"{base}/agencies.csv")
        silver, dead, batch_counts = transform(bodies, agencies, uuid.uuid4().hex)
        counts |= batch_counts
        counts |= merge_silver(f"{prefix}/silver", options, agency_id, silver)
        if dead.num_rows:
            write_deltalake(
                f"{prefix}/deadletter",
                dead,
                mode="append",
                partition_by=PARTITIONS,
                storage_options=options,
            )
        folded |= {source: listing[source] for source in sources}
        save_folded(fs, state, folded)
    return counts


if __name__ == "__main__":
    peer_main(__doc__.splitlines()[0], run)
