"""S3ObjectStore against moto's server on loopback, with faults injected by a reverse proxy."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import boto3
import pytest
from etl_core.adapters.backoff import Backoff
from etl_core.adapters.s3_object_store import MIB, S3ObjectStore, open_s3_object_store
from etl_core.errors import ExitCode, ObjectNotFound, ObjectStoreError, TemporaryFailure
from etl_core.s3_limits import S3Limits
from etl_core.testing.object_store_contract import ObjectStoreContract

from integration.s3_support import Fault, FaultProxy, refusing_endpoint, silent_endpoint

FAST = Backoff(attempts=4, base_s=0.001, cap_s=0.005)


@pytest.fixture()
async def store(moto_url: str, bucket: str) -> AsyncIterator[S3ObjectStore]:
    async with open_s3_object_store(bucket, "base/dir", endpoint_url=moto_url, backoff=FAST) as s:
        yield s


@pytest.fixture()
async def proxied(proxy: FaultProxy, bucket: str) -> AsyncIterator[S3ObjectStore]:
    async with open_s3_object_store(bucket, "base/dir", endpoint_url=proxy.url, backoff=FAST) as s:
        yield s


def gets(request) -> bool:
    return bool(request.method == "GET" and "list-type" not in request.query)


def puts(request) -> bool:
    return bool(request.method == "PUT")


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


class TestS3ObjectStoreContract(ObjectStoreContract):
    """The shared ObjectStore contract, through the real adapter against moto's S3 endpoint."""

    many_keys = 1001  # moto is slow; still more than one ListObjectsV2 page

    @pytest.fixture()
    async def store(self, moto_url: str, bucket: str) -> AsyncIterator[S3ObjectStore]:
        async with open_s3_object_store(bucket, "contract", endpoint_url=moto_url) as opened:
            yield opened


# -- basic behaviour -----------------------------------------------------------------------------


async def test_put_then_get_round_trips_under_the_store_prefix(store, s3, bucket):
    await store.put("a/b.txt", b"hello")

    assert await store.get("a/b.txt") == b"hello"
    assert s3.get_object(Bucket=bucket, Key="base/dir/a/b.txt")["Body"].read() == b"hello"


async def test_objects_are_stored_with_the_content_type_of_their_suffix(store, s3, bucket):
    await store.put("exports/agency_id=1/silver.csv", b"a,b\n")
    await store.put("exports/agency_id=1/dead.ndjson.gz", b"\x1f\x8b")
    assert await store.put_if_absent("exports/agency_id=1/manifest.json", b"{}")
    await store.put("bronze/agency_id=1/doc.bin", b"\x00")

    found = {
        key: s3.head_object(Bucket=bucket, Key=store.prefix + key)["ContentType"]
        for key in ("exports/agency_id=1/silver.csv",
                    "exports/agency_id=1/dead.ndjson.gz", "exports/agency_id=1/manifest.json",
                    "bronze/agency_id=1/doc.bin")
    }  # fmt: skip

    assert found == {
        "exports/agency_id=1/silver.csv": "text/csv; charset=utf-8",
        "exports/agency_id=1/dead.ndjson.gz": "application/gzip",
        "exports/agency_id=1/manifest.json": "application/json",
        "bronze/agency_id=1/doc.bin": "application/octet-stream",
    }


async def test_missing_key_raises_object_not_found_from_get_head_and_stream(store):
    with pytest.raises(ObjectNotFound):
        await store.get("nope")
    with pytest.raises(ObjectNotFound):
        await store.head("nope")
    with pytest.raises(ObjectNotFound):
        await collect(store.stream("nope"))


async def test_head_reports_size_and_unquoted_etag(store):
    await store.put("k", b"12345")

    info = await store.head("k")

    assert (info.key, info.size) == ("k", 5)
    assert info.etag
    assert '"' not in info.etag


async def test_delete_is_idempotent(store):
    await store.put("k", b"x")
    await store.delete("k")
    await store.delete("k")

    with pytest.raises(ObjectNotFound):
        await store.get("k")


async def test_list_filters_by_prefix_and_returns_relative_keys_in_order(store):
    await store.put_many({"b/2": b"22", "a/1": b"1", "b/1": b"1", "c": b""})

    listed = [(info.key, info.size) async for info in store.list("b/")]

    assert listed == [("b/1", 1), ("b/2", 2)]


async def test_missing_bucket_is_an_object_store_error_not_a_missing_key(moto_url):
    async with open_s3_object_store("no-such-bucket-here", endpoint_url=moto_url) as store:
        with pytest.raises(ObjectStoreError, match="does not exist") as caught:
            await store.get("k")
    assert not isinstance(caught.value, ObjectNotFound)


# -- conditional writes --------------------------------------------------------------------------


async def test_put_if_absent_creates_once_and_then_reports_existing(store):
    assert await store.put_if_absent("marker", b"first") is True
    assert await store.put_if_absent("marker", b"second") is False
    assert await store.get("marker") == b"first"


async def test_concurrent_put_if_absent_has_exactly_one_winner(store):
    results = await asyncio.gather(*(store.put_if_absent("m", str(i).encode()) for i in range(8)))

    assert sorted(results) == [False] * 7 + [True]
    winner = results.index(True)
    assert await store.get("m") == str(winner).encode()


async def test_put_if_absent_whose_response_was_lost_still_reports_created(proxied, proxy):
    proxy.inject(Fault("reset_after", match=puts))  # the write lands, the answer never arrives

    assert await proxied.put_if_absent("marker", b"mine") is True
    assert proxy.count(puts) == 2  # the resent PUT met 412 and recognised its own write
    assert await proxied.put_if_absent("marker", b"mine") is False  # same bytes, another call


async def test_conditional_request_conflict_409_is_retried(proxied, proxy):
    proxy.inject(Fault("status", 409, "ConditionalRequestConflict", match=puts))

    assert await proxied.put_if_absent("marker", b"x") is True
    assert proxy.count(puts) == 2


# -- listings, multipart, streaming --------------------------------------------------------------


async def test_listing_more_than_1000_keys_follows_continuation_tokens(store, proxied, proxy):
    keys = [f"many/{i:05d}" for i in range(1003)]
    await store.put_many((key, b"") for key in reversed(keys))

    listed = [info.key async for info in proxied.list("many/")]

    assert listed == keys
    assert proxy.count(lambda r: r.query.get("list-type") == "2") == 2  # two pages


async def test_large_put_uses_multipart_and_reads_back_identically(moto_url, bucket, proxy):
    body = os.urandom(11 * MIB)
    async with open_s3_object_store(
        bucket, endpoint_url=proxy.url, multipart_threshold=MIB, backoff=FAST
    ) as store:
        await store.put("big.bin", body)
        await store.put("big.csv", body)

        assert proxy.count(lambda r: "partNumber" in r.query) == 4  # 8 MiB parts: 8 + 3, twice
        assert (await store.head("big.bin")).size == len(body)
        assert await store.get("big.bin") == body
    typed = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    assert (
        typed.head_object(Bucket=bucket, Key="big.csv")["ContentType"] == "text/csv; charset=utf-8"
    )


async def test_failed_multipart_upload_is_aborted_and_leaves_nothing(bucket, proxy, s3):
    proxy.inject(
        Fault("status", 400, "InvalidArgument", match=lambda r: r.query.get("partNumber") == "2")
    )
    async with open_s3_object_store(
        bucket, endpoint_url=proxy.url, multipart_threshold=MIB, backoff=FAST
    ) as store:
        with pytest.raises(ObjectStoreError, match="InvalidArgument"):
            await store.put("big.bin", os.urandom(11 * MIB))

    assert proxy.count(lambda r: r.method == "DELETE" and "uploadId" in r.query) == 1
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


async def test_stream_yields_the_whole_body_in_bounded_chunks(store):
    body = os.urandom(3 * MIB + 17)
    await store.put("s.bin", body)

    chunks = [chunk async for chunk in store.stream("s.bin", chunk_size=256 * 1024)]

    assert b"".join(chunks) == body
    assert max(len(chunk) for chunk in chunks) <= 256 * 1024


async def test_stream_resumes_a_dropped_body_with_a_range_request(store, proxied, proxy):
    body = os.urandom(2 * MIB)
    await store.put("s.bin", body)
    proxy.inject(Fault("truncate", match=gets))

    assert await collect(proxied.stream("s.bin", chunk_size=64 * 1024)) == body
    ranges = [r.headers.get("Range") for r in proxy.seen if gets(r)]
    assert ranges[0] is None
    assert ranges[1] is not None
    assert ranges[1].startswith("bytes=")
    assert ranges[1] != "bytes=0-"


async def test_stream_fails_if_the_object_changes_between_resumed_reads(
    store, proxied, proxy, s3, bucket
):
    await store.put("s.bin", os.urandom(MIB))
    proxy.inject(Fault("truncate", match=gets))
    chunks = proxied.stream("s.bin", chunk_size=64 * 1024)
    first = await anext(chunks)
    s3.put_object(Bucket=bucket, Key="base/dir/s.bin", Body=b"replaced")

    with pytest.raises(ObjectStoreError, match="changed"):
        await collect(chunks)
    assert first


# -- retries -------------------------------------------------------------------------------------


async def test_slowdown_is_retried_until_it_succeeds(store, proxied, proxy):
    await store.put("k", b"v")
    proxy.inject(Fault("status", 503, "SlowDown"), Fault("status", 503, "SlowDown"))

    assert await proxied.get("k") == b"v"
    assert proxy.count() == 3


async def test_without_retries_the_same_slowdown_fails(bucket, proxy):
    # The control for the test above: one attempt only (and botocore's own retries are off).
    proxy.inject(Fault("status", 503, "SlowDown"))
    async with open_s3_object_store(
        bucket, endpoint_url=proxy.url, backoff=Backoff(attempts=1)
    ) as s:
        with pytest.raises(TemporaryFailure):
            await s.get("k")
    assert proxy.count() == 1


async def test_throttling_that_outlasts_retries_is_a_temporary_failure(proxied, proxy):
    proxy.inject(*[Fault("status", 503, "SlowDown")] * 4)

    with pytest.raises(TemporaryFailure, match="after 4 attempts") as caught:
        await proxied.put("k", b"v")
    assert caught.value.exit_code == ExitCode.TEMPORARY
    assert proxy.count() == 4


@pytest.mark.parametrize("code", ["RequestLimitExceeded", "ThrottlingException"])
async def test_other_throttling_codes_are_retried(proxied, proxy, code):
    proxy.inject(Fault("status", 400, code))

    await proxied.put("k", b"v")

    assert proxy.count() == 2


async def test_server_errors_are_retried_and_then_reported_as_an_outage(store, proxied, proxy):
    await store.put("k", b"v")
    proxy.inject(Fault("status", 500, "InternalError"))
    assert await proxied.get("k") == b"v"
    assert proxy.count() == 2

    proxy.inject(*[Fault("status", 500, "InternalError")] * 4)
    with pytest.raises(TemporaryFailure, match="InternalError") as caught:
        await proxied.get("k")
    assert caught.value.exit_code == ExitCode.TEMPORARY  # a 5xx outage is retried later


async def test_connection_resets_are_retried(store, proxied, proxy):
    # aiohttp itself resends an idempotent request once after a disconnect; the second reset
    # is beyond that and only the adapter's retry recovers from it (see the control below).
    await store.put("k", b"v")
    proxy.inject(Fault("reset"), Fault("reset"))

    assert await proxied.get("k") == b"v"
    assert proxy.count() == 3


async def test_without_retries_the_same_resets_fail(store, bucket, proxy):
    await store.put("k", b"v")
    proxy.inject(Fault("reset"), Fault("reset"))
    async with open_s3_object_store(
        bucket, "base/dir", endpoint_url=proxy.url, backoff=Backoff(attempts=1)
    ) as s:
        with pytest.raises(TemporaryFailure, match="Connection"):
            await s.get("k")
    assert proxy.count() == 2


async def test_an_attempt_cut_short_by_the_budget_names_the_error_that_came_before(
    store, bucket, proxy
):
    await store.put("k", b"v")
    proxy.inject(Fault("status"), Fault("stall"))  # 503 SlowDown, then a request that never ends
    backoff = Backoff(attempts=5, base_s=0.0, budget_s=2.0)  # retry at once; cut at 2 s
    async with open_s3_object_store(
        bucket, "base/dir", endpoint_url=proxy.url, backoff=backoff
    ) as s:
        with pytest.raises(TemporaryFailure, match="after 2 attempts") as caught:
            await s.get("k")

    # Not a bare "TimeoutError": what went wrong before the budget ran out, and that it did.
    assert "SlowDown" in str(caught.value)
    assert "the retry budget ran out during the last attempt" in str(caught.value)
    assert proxy.count() == 2


async def test_a_refusing_endpoint_is_retried_for_the_budget_then_is_an_outage(bucket):
    budget = 1.5
    limits = S3Limits(retry_budget_s=budget, connect_timeout_s=1.0, read_timeout_s=1.0)
    with refusing_endpoint() as url:
        async with open_s3_object_store(bucket, endpoint_url=url, limits=limits) as s:
            started = time.monotonic()
            with pytest.raises(TemporaryFailure, match=r"after [2-9]\d* attempts") as caught:
                await s.get("k")
            elapsed = time.monotonic() - started

    assert caught.value.exit_code == ExitCode.TEMPORARY
    assert "Could not connect" in str(caught.value)
    # Retried (more than once: see the match above), and never past the budget by much: no retry
    # starts after it. (No lower bound: a long jittered delay may end the retries early.)
    assert elapsed < budget + 30


async def test_a_silent_endpoint_times_out_within_the_budget_and_is_an_outage(bucket):
    budget = 2.0
    limits = S3Limits(retry_budget_s=budget, connect_timeout_s=1.0, read_timeout_s=60.0)
    with silent_endpoint() as url:
        async with open_s3_object_store(bucket, endpoint_url=url, limits=limits) as s:
            started = time.monotonic()
            with pytest.raises(TemporaryFailure) as caught:
                await s.put("k", b"v")
            elapsed = time.monotonic() - started

    # The read timeout (60 s) alone would hold the request far longer: the budget cuts it.
    assert caught.value.exit_code == ExitCode.TEMPORARY
    assert budget * 0.9 <= elapsed < 30


async def test_a_silent_endpoint_times_out_on_the_read_timeout_and_is_retried(bucket):
    limits = S3Limits(retry_budget_s=120.0, connect_timeout_s=1.0, read_timeout_s=0.5)
    slow = Backoff(attempts=3, base_s=0.01, cap_s=0.01)
    with silent_endpoint() as url:
        async with open_s3_object_store(bucket, endpoint_url=url, backoff=slow, limits=limits) as s:
            started = time.monotonic()
            with pytest.raises(TemporaryFailure, match="after 3 attempts") as caught:
                await s.get("k")
            elapsed = time.monotonic() - started

    assert "Timeout" in str(caught.value)
    assert elapsed < 60  # three reads of 0.5 s each, not the 120 s budget


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (400, "InvalidRequest")])
async def test_client_errors_are_not_retried(proxied, proxy, status, code):
    proxy.inject(Fault("status", status, code))

    with pytest.raises(ObjectStoreError, match=code) as caught:
        await proxied.put("k", b"v")
    assert caught.value.exit_code == ExitCode.FAILED
    assert proxy.count() == 1


async def test_bulk_requests_never_exceed_max_concurrency(bucket, proxy):
    async with open_s3_object_store(bucket, endpoint_url=proxy.url, max_concurrency=3) as store:
        await store.put_many((f"k{i}", b"x") for i in range(24))
        bodies = await store.get_many(f"k{i}" for i in range(24))

    assert len(bodies) == 24
    assert 1 < proxy.max_in_flight <= 3


# -- wiring --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
async def test_opener_takes_the_endpoint_from_the_standard_environment(
    moto_url, bucket, monkeypatch, variable
):
    monkeypatch.setenv(variable, moto_url)

    async with open_s3_object_store(bucket) as store:
        await store.put("k", b"v")
        assert await store.get("k") == b"v"


async def test_store_repr_shows_no_client_or_credentials(store):
    assert "testing" not in repr(store)
    assert "client" not in repr(store)
