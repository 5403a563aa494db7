"""Tests of committing generations: publish, skip, re-stamp, dry-run verdicts, inspection."""

from __future__ import annotations

from etl_core.model import Counts
from etl_core.testing.fakes import FakeObjectStore

from data_pipeline.generations import commit, inspect, would_commit
from data_pipeline.publish import PartitionPublisher
from data_pipeline.silver_output import PartitionOutput, build_output

PART = "agency_id=1/dt=2024-01-08"


def _output(run_id: str, rows: list[bytes]) -> PartitionOutput:
    return build_output(PART, run_id, rows, [], Counts(rows_in=len(rows), rows_out=len(rows)))


async def test_new_content_is_published_with_every_key_written() -> None:
    publisher = PartitionPublisher(FakeObjectStore())

    committed = await commit(
        publisher, _output("r1", [b"1"]), run_id="r1", input_fingerprint="F1", force=False
    )

    assert committed.status == "published"
    assert committed.written == (
        f"silver/{PART}/part-r1-0.ndjson",
        f"_manifests/{PART}/0000000001.json",
    )


async def test_same_content_and_input_writes_nothing() -> None:
    store = FakeObjectStore()
    publisher = PartitionPublisher(store)
    await commit(publisher, _output("r1", [b"1"]), run_id="r1", input_fingerprint="F1", force=False)
    before = dict(store.objects)

    committed = await commit(
        publisher, _output("r2", [b"1"]), run_id="r2", input_fingerprint="F1", force=False
    )

    assert (committed.status, committed.written) == ("unchanged", ())
    assert store.objects == before


async def test_same_content_from_a_new_input_is_restamped_on_the_same_files() -> None:
    store = FakeObjectStore()
    publisher = PartitionPublisher(store)
    await commit(publisher, _output("r1", [b"1"]), run_id="r1", input_fingerprint="F1", force=False)

    committed = await commit(
        publisher, _output("r2", [b"1"]), run_id="r2", input_fingerprint="F2", force=False
    )

    assert committed == type(committed)("unchanged", (f"_manifests/{PART}/0000000002.json",))
    manifest = await publisher.current(PART)
    assert manifest is not None
    assert (manifest.input_fingerprint, manifest.run_id) == ("F2", "r2")
    assert manifest.files == (f"silver/{PART}/part-r1-0.ndjson",)


async def test_would_commit_compares_content_unless_forced() -> None:
    publisher = PartitionPublisher(FakeObjectStore())
    assert await would_commit(publisher, _output("r1", [b"1"]), False) == "would publish"
    await commit(publisher, _output("r1", [b"1"]), run_id="r1", input_fingerprint="F1", force=False)
    assert await would_commit(publisher, _output("r2", [b"1"]), False) == "would stay unchanged"
    assert await would_commit(publisher, _output("r2", [b"1"]), True) == "would publish"
    assert await would_commit(publisher, _output("r2", [b"2"]), False) == "would publish"


async def test_inspection_finds_missing_and_leftover_files() -> None:
    store = FakeObjectStore()
    publisher = PartitionPublisher(store)
    await commit(publisher, _output("r1", [b"1"]), run_id="r1", input_fingerprint="F1", force=False)
    manifest = await publisher.current(PART)
    del store.objects[f"silver/{PART}/part-r1-0.ndjson"]
    store.objects[f"deadletter/{PART}/part-crashed.ndjson"] = b"{}\n"

    found = await inspect(store, PART, manifest)

    assert found.missing == (f"silver/{PART}/part-r1-0.ndjson",)
    assert found.leftovers == (f"deadletter/{PART}/part-crashed.ndjson",)
