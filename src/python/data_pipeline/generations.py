"""A partition's committed generation: publish a new one, re-stamp an equal one, check the files."""

from __future__ import annotations

import attrs
from etl_core import clock
from etl_core.ports import ObjectStore

from data_pipeline.publish import (
    ConcurrentPublish,
    PartitionManifest,
    PartitionPublisher,
    data_prefixes,
)
from data_pipeline.silver_output import PartitionOutput

PUBLISHED, UNCHANGED, DRY_RUN = "published", "unchanged", "dry_run"


@attrs.frozen
class Committed:
    """What commit() did: the ledger status and every key it wrote."""

    status: str
    written: tuple[str, ...] = ()


async def commit(
    publisher: PartitionPublisher,
    output: PartitionOutput,
    *,
    run_id: str,
    input_fingerprint: str,
    force: bool,
) -> Committed:
    """Publish output as a new generation unless the same content is committed (and not force).

    Equal content from another input gets a manifest-only generation naming the new input, so the
    next run over that input takes the fast path. Raises ConcurrentPublish (exit 75).
    """
    result = await publisher.publish(
        partition=output.partition,
        run_id=run_id,
        files=output.files,
        input_fingerprint=input_fingerprint,
        content_fingerprint=output.fingerprint,
        counts=output.counts,
        created_at=clock.now().isoformat(),
        force=force,
    )
    if result.published:
        return Committed(PUBLISHED, (*sorted(output.files), result.manifest.key))
    if result.manifest.input_fingerprint == input_fingerprint:
        return Committed(UNCHANGED)
    stamped = attrs.evolve(
        result.manifest,
        seq=result.manifest.seq + 1,
        run_id=run_id,
        input_fingerprint=input_fingerprint,
        counts=output.counts,
        created_at=clock.now().isoformat(),
    )
    if not await publisher.store.put_if_absent(stamped.key, stamped.to_json()):
        raise ConcurrentPublish(f"{stamped.key} was committed by another writer")
    return Committed(UNCHANGED, (stamped.key,))


async def would_commit(publisher: PartitionPublisher, output: PartitionOutput, force: bool) -> str:
    """What commit() would do, for a dry run: 'would publish' or 'would stay unchanged'."""
    current = await publisher.current(output.partition)
    if force or current is None or current.content_fingerprint != output.fingerprint:
        return "would publish"
    return "would stay unchanged"


@attrs.frozen
class Inspection:
    """Data files of a partition against its newest manifest."""

    missing: tuple[str, ...]  # listed by the manifest, absent: the generation is damaged
    leftovers: tuple[str, ...]  # present, not listed: left by a crashed or superseded run


async def inspect(
    store: ObjectStore, partition: str, manifest: PartitionManifest | None
) -> Inspection:
    """List the partition's data files (no bodies) and compare them with manifest."""
    present = {info.key for prefix in data_prefixes(partition) async for info in store.list(prefix)}
    listed = set(manifest.files) if manifest is not None else set()
    return Inspection(tuple(sorted(listed - present)), tuple(sorted(present - listed)))
