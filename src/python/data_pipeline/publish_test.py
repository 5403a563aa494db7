"""Partition publication: commits, idempotent re-runs, crashes between steps, sweeping."""

from __future__ import annotations

import pytest
from etl_core.errors import ObjectStoreError
from etl_core.model import Counts
from etl_core.testing.fakes import FakeObjectStore

from data_pipeline.publish import (
    ConcurrentPublish,
    ManifestCorrupt,
    PartitionPublisher,
    PublishResult,
    manifest_key,
)

PART = "agency_id=10/dt=2024-01-08"


async def _publish(
    pub: PartitionPublisher, run_id: str, body: bytes, fp: str, force: bool = False
) -> PublishResult:
    return await pub.publish(
        partition=PART,
        run_id=run_id,
        files={f"silver/{PART}/part-{run_id}-0.ndjson": body},
        input_fingerprint="in-" + fp,
        content_fingerprint=fp,
        counts=Counts(rows_in=1, rows_out=1),
        created_at="2026-01-01T00:00:00Z",
        force=force,
    )


async def test_first_publish_commits_manifest_listing_the_files() -> None:
    store = FakeObjectStore()
    pub = PartitionPublisher(store)

    result = await _publish(pub, "r1", b'{"a":1}\n', "fp1")

    assert result.published
    assert result.manifest.seq == 1
    assert manifest_key(PART, 1) in store.objects
    assert await pub.read_files(PART) == {f"silver/{PART}/part-r1-0.ndjson": b'{"a":1}\n'}


async def test_rerun_with_unchanged_content_writes_nothing() -> None:
    store = FakeObjectStore()
    pub = PartitionPublisher(store)
    await _publish(pub, "r1", b"x\n", "fp1")
    before = dict(store.objects)

    result = await _publish(pub, "r2", b"x\n", "fp1")

    assert not result.published
    assert store.objects == before


async def test_changed_content_replaces_generation_and_removes_old_files() -> None:
    store = FakeObjectStore()
    pub = PartitionPublisher(store)
    await _publish(pub, "r1", b"old\n", "fp1")

    result = await _publish(pub, "r2", b"new\n", "fp2")

    assert result.published
    assert result.manifest.seq == 2
    assert result.removed == (f"silver/{PART}/part-r1-0.ndjson",)
    assert await pub.read_files(PART) == {f"silver/{PART}/part-r2-0.ndjson": b"new\n"}


async def test_force_republishes_identical_content() -> None:
    store = FakeObjectStore()
    pub = PartitionPublisher(store)
    await _publish(pub, "r1", b"x\n", "fp1")

    result = await _publish(pub, "r2", b"x\n", "fp1", force=True)

    assert result.published
    assert result.manifest.run_id == "r2"


async def test_crash_before_commit_keeps_old_generation_visible_and_next_run_sweeps() -> None:
    store = FakeObjectStore()
    pub = PartitionPublisher(store)
    await _publish(pub, "r1", b"old\n", "fp1")
    store.fail_on["put_if_absent"] = ObjectStoreError("killed before commit")

    with pytest.raises(ObjectStoreError):
        await _publish(pub, "r2", b"new\n", "fp2")

    assert await pub.read_files(PART) == {f"silver/{PART}/part-r1-0.ndjson": b"old\n"}
    assert f"silver/{PART}/part-r2-0.ndjson" in store.objects  # unreferenced leftover
    del store.fail_on["put_if_absent"]
    result = await _publish(pub, "r3", b"old\n", "fp1")
    assert not result.published
    assert result.removed == (f"silver/{PART}/part-r2-0.ndjson",)


async def test_unreadable_manifest_is_reported_with_its_key() -> None:
    store = FakeObjectStore(objects={manifest_key(PART, 3): b"{}"})

    with pytest.raises(ManifestCorrupt, match="0000000003.json"):
        await PartitionPublisher(store).current(PART)


async def test_losing_a_commit_race_is_a_temporary_failure() -> None:
    class RacingStore(FakeObjectStore):
        async def put_if_absent(self, key: str, body: bytes) -> bool:
            return False  # another writer committed this seq first

    with pytest.raises(ConcurrentPublish):
        await _publish(PartitionPublisher(RacingStore()), "r9", b"y\n", "fp9")


async def test_files_outside_the_partition_are_refused() -> None:
    pub = PartitionPublisher(FakeObjectStore())
    with pytest.raises(ValueError, match="outside partition"):
        await pub.publish(
            partition=PART,
            run_id="r1",
            files={"silver/agency_id=11/dt=2024-01-08/x.ndjson": b""},
            input_fingerprint="i",
            content_fingerprint="c",
            counts=Counts(),
            created_at="t",
        )
