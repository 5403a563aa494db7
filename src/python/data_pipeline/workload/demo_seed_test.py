"""The embedded store is seeded only when it holds neither agencies nor bronze."""

from __future__ import annotations

from etl_core.testing.fakes import FakeObjectStore

from data_pipeline.workload.demo_seed import is_empty


async def test_store_without_agencies_or_bronze_is_empty() -> None:
    assert await is_empty(FakeObjectStore(objects={"silver/x.ndjson": b""}))


async def test_agencies_file_or_any_bronze_object_means_not_empty() -> None:
    assert not await is_empty(FakeObjectStore(objects={"agencies.csv": b"agency_id\n"}))
    assert not await is_empty(FakeObjectStore(objects={"bronze/agency_id=1/dt=x/p": b""}))
    assert not await is_empty(
        FakeObjectStore(objects={"ref/agencies.csv": b""}), agencies_key="ref/agencies.csv"
    )


def test_the_agencies_key_is_the_generators() -> None:
    from data_pipeline.workload import demo_seed, generate

    assert demo_seed.AGENCIES_KEY == generate.AGENCIES_KEY
