"""ObjectStore on S3 through an aiobotocore client: bounded concurrency, retries, multipart.

The retries are ours (etl_core.adapters.backoff), not botocore's standard mode: its docstring says
why (no time budget, a client-wide retry quota, no resume of a broken stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
from botocore.exceptions import ClientError

from etl_core.adapters.backoff import Backoff
from etl_core.adapters.s3_errors import (
    DRIVER_ERRORS,
    NOT_FOUND_CODES,
    Kind,
    classify,
    code,
    describe,
    status,
)
from etl_core.errors import ObjectNotFound, ObjectStoreError, TemporaryFailure
from etl_core.model import ObjectInfo
from etl_core.s3_limits import S3Limits

T = TypeVar("T")

MIB = 1 << 20
MIN_PART_SIZE = 5 * MIB  # S3 rejects smaller parts (except the last one)
MAX_PARTS = 10_000
DEFAULT_MULTIPART_THRESHOLD = 16 * MIB
# Content-Type by the key's suffix (S3 otherwise says binary/octet-stream, and a browser or a
# presigned link then downloads an export instead of showing it); the rest is octet-stream.
_CONTENT_TYPES = (
    (".csv", "text/csv; charset=utf-8"),
    (".ndjson", "application/x-ndjson"),
    (".jsonl", "application/x-ndjson"),
    (".json", "application/json"),
    (".parquet", "application/vnd.apache.parquet"),
    (".gz", "application/gzip"),
    (".txt", "text/plain; charset=utf-8"),
    (".pdf", "application/pdf"),
)


def content_type(key: str) -> str:
    """The Content-Type an object named key is stored with."""
    lower = key.lower()
    for suffix, kind in _CONTENT_TYPES:
        if lower.endswith(suffix):
            return kind
    return "application/octet-stream"


_WRITE_ID = "etl-write-id"  # user metadata naming the put_if_absent call that wrote an object


def _as_prefix(prefix: str) -> str:
    return prefix.strip("/") + "/" if prefix.strip("/") else ""


def _strip_etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def _utc(value: Any) -> dt.datetime | None:
    return value.astimezone(dt.UTC) if isinstance(value, dt.datetime) else None


@attrs.define
class S3ObjectStore:
    """ObjectStore over one bucket/prefix; keys are relative to the prefix.

    Every S3 request takes a slot of a semaphore sized `max_concurrency`, so bulk helpers and
    multipart uploads never exceed it (a stream holds a slot only while its request is opened).
    This class is the single retry layer: the opener turns botocore's own retries off.
    Throttling, 5xx, refused or dropped connections and timeouts are retried until the backoff
    runs out (with a budget_s, each request and its retries also end by the budget: a silent
    endpoint cannot hang the run), then raise TemporaryFailure: an outage, exit 75. Other 4xx
    raise ObjectStoreError at once; a missing key ObjectNotFound.
    """

    client: Any = attrs.field(repr=False)
    bucket: str
    prefix: str = attrs.field(default="", converter=_as_prefix)
    max_concurrency: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    multipart_threshold: int = attrs.field(default=DEFAULT_MULTIPART_THRESHOLD)
    part_size: int = attrs.field(default=8 * MIB, validator=attrs.validators.ge(MIN_PART_SIZE))
    list_page_size: int = attrs.field(default=1000, validator=attrs.validators.in_(range(1, 1001)))
    backoff: Backoff = Backoff()
    _slots: asyncio.Semaphore = attrs.field(init=False, repr=False)

    @_slots.default
    def _make_slots(self) -> asyncio.Semaphore:
        return asyncio.Semaphore(self.max_concurrency)

    # -- ObjectStore ---------------------------------------------------------------------------

    async def get(self, key: str) -> bytes:
        """Whole object. Raises ObjectNotFound."""

        async def attempt() -> bytes:
            response = await self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            body = response["Body"]
            async with body:  # releases the connection; __aenter__ yields the raw response
                return bytes(await body.read())

        return await self._call("get", key, attempt)

    async def stream(self, key: str, chunk_size: int = MIB) -> AsyncIterator[bytes]:
        """Object body in chunks; a dropped connection resumes with a Range request."""
        offset, size, etag, failures = 0, -1, None, 0
        started = asyncio.get_running_loop().time()
        while size < 0 or offset < size:
            response = await self._call(
                "get", key, functools.partial(self._open, key, offset, etag)
            )
            if size < 0:
                size, etag = int(response["ContentLength"]), response.get("ETag")
            body = response["Body"]
            try:
                async with body:
                    while chunk := await body.read(chunk_size):
                        offset += len(chunk)
                        yield bytes(chunk)
                return
            except DRIVER_ERRORS as exc:
                failures += 1
                delay = self.backoff.delay(failures - 1)
                elapsed = asyncio.get_running_loop().time() - started
                if (
                    classify(exc) == Kind.FATAL
                    or failures >= self.backoff.attempts
                    or not self.backoff.within_budget(elapsed, delay)
                ):
                    raise self._error("get", key, exc, failures, elapsed) from exc
                await self.backoff.sleep(delay)

    async def put(self, key: str, body: bytes) -> None:
        """Create or replace key; multipart above multipart_threshold (aborted on failure)."""
        if len(body) > self.multipart_threshold:
            await self._put_multipart(key, body)
            return
        await self._call(
            "put",
            key,
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=body, ContentType=content_type(key)
            ),
        )

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        """Conditional PutObject (If-None-Match: *); False when the key already existed.

        A retried request can meet its own earlier write (the first attempt landed but its answer
        was lost; aiohttp also resends idempotent methods once on a dropped keep-alive connection).
        Each call therefore tags its write with a unique id, and a 412 is checked against it.
        """
        write_id = uuid.uuid4().hex

        async def attempt() -> bool:
            try:
                await self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    Body=body,
                    ContentType=content_type(key),
                    IfNoneMatch="*",
                    Metadata={_WRITE_ID: write_id},
                )
            except ClientError as exc:
                if status(exc) == 412 or code(exc) == "PreconditionFailed":
                    return False
                raise
            return True

        if await self._call("put_if_absent", key, attempt):
            return True
        try:
            existing = await self._call(
                "head", key, lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            )
        except ObjectNotFound:  # deleted in between: whoever created it, it was not this call
            return False
        return bool(existing.get("Metadata", {}).get(_WRITE_ID) == write_id)

    async def head(self, key: str) -> ObjectInfo:
        """Size, etag and last-modified time of key. Raises ObjectNotFound."""
        response = await self._call(
            "head", key, lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        )
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=_strip_etag(response.get("ETag")),
            last_modified=_utc(response.get("LastModified")),
        )

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object under prefix in key order, following ListObjectsV2 continuation tokens."""
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self.prefix + prefix,
            "MaxKeys": self.list_page_size,
        }
        while True:
            page = await self._call("list", prefix, lambda: self.client.list_objects_v2(**request))
            for item in page.get("Contents", ()):
                yield ObjectInfo(
                    key=item["Key"][len(self.prefix) :],
                    size=int(item["Size"]),
                    etag=_strip_etag(item.get("ETag")),
                    last_modified=_utc(item.get("LastModified")),
                )
            if not page.get("IsTruncated"):
                return
            request["ContinuationToken"] = page["NextContinuationToken"]

    async def delete(self, key: str) -> None:
        """Remove key; idempotent (S3 answers 204 for a missing key too)."""
        with contextlib.suppress(ObjectNotFound):
            await self._call(
                "delete",
                key,
                lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key)),
            )

    # -- bulk helpers --------------------------------------------------------------------------

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Fetch objects concurrently (max_concurrency); the first error cancels the rest."""
        wanted = list(dict.fromkeys(keys))
        bodies = await _gather_or_cancel([self.get(key) for key in wanted])
        return dict(zip(wanted, bodies, strict=True))

    async def put_many(self, items: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> None:
        """Store objects concurrently (max_concurrency); the first error cancels the rest."""
        pairs = items.items() if isinstance(items, Mapping) else items
        await _gather_or_cancel([self.put(key, body) for key, body in pairs])

    # -- internals -----------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        if not key or key.startswith("/"):
            raise ObjectStoreError(f"invalid object key {key!r}: must be relative and non-empty")
        return self.prefix + key

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    async def _open(self, key: str, offset: int, etag: str | None) -> Any:
        if offset == 0:
            return await self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        # Resume where the dropped stream stopped, and only if the object is still the same.
        return await self.client.get_object(
            Bucket=self.bucket, Key=self._key(key), Range=f"bytes={offset}-", IfMatch=etag or "*"
        )

    async def _put_multipart(self, key: str, body: bytes) -> None:
        full_key = self._key(key)
        part_size = max(self.part_size, -(-len(body) // MAX_PARTS))
        created = await self._call(
            "put",
            key,
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket, Key=full_key, ContentType=content_type(key)
            ),
        )
        upload_id = created["UploadId"]

        async def upload(number: int, start: int) -> dict[str, Any]:
            response = await self._call(
                "put",
                key,
                lambda: self.client.upload_part(
                    Bucket=self.bucket,
                    Key=full_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body[start : start + part_size],
                ),
            )
            return {"PartNumber": number, "ETag": response["ETag"]}

        try:
            starts = range(0, len(body), part_size)
            parts = await _gather_or_cancel([upload(n, s) for n, s in enumerate(starts, 1)])
            await self._call(
                "put",
                key,
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=full_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                ),
            )
        except BaseException:
            # Best effort: a failed abort leaves parts that a bucket lifecycle rule expires.
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=full_key, UploadId=upload_id
                    )
                )
            raise

    async def _call(self, op: str, key: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run one S3 request under a concurrency slot, retrying what is worth retrying.

        The budget's clock starts with the first attempt (not while waiting for a slot); an
        attempt still running when it ends is cut off there.
        """
        loop = asyncio.get_running_loop()
        budget = self.backoff.budget_s
        started: float | None = None
        number = 0
        earlier: BaseException | None = None  # the previous attempt's error
        while True:
            number += 1
            try:
                async with self._slots:
                    if started is None:
                        started = loop.time()
                    if budget is None:
                        return await attempt()
                    async with asyncio.timeout_at(started + budget):
                        return await attempt()
            except DRIVER_ERRORS as exc:
                assert started is not None
                elapsed = loop.time() - started
                delay = self.backoff.delay(number - 1)
                if (
                    classify(exc) == Kind.FATAL
                    or number >= self.backoff.attempts
                    or not self.backoff.within_budget(elapsed, delay)
                ):
                    cut = isinstance(exc, TimeoutError) and budget is not None and elapsed >= budget
                    error = self._error(
                        op, key, exc, number, elapsed, earlier=earlier if cut else None
                    )
                    if isinstance(error, ObjectNotFound):
                        raise error from None
                    raise error from exc
                earlier = exc
            await self.backoff.sleep(delay)

    def _error(
        self,
        op: str,
        key: str,
        exc: BaseException,
        attempts: int,
        elapsed: float = 0.0,
        *,
        earlier: BaseException | None = None,
    ) -> Exception:
        """The error a failed request raises. earlier: the previous attempt's error, named
        instead of a bare TimeoutError when the retry budget cut the last attempt short."""
        if isinstance(exc, ClientError):
            if code(exc) == "NoSuchBucket":
                return ObjectStoreError(
                    f"s3 {op} {self._url(key)}: bucket {self.bucket!r} does not exist"
                )
            if code(exc) in NOT_FOUND_CODES or status(exc) == 404:
                return ObjectNotFound(key)
            if code(exc) == "PreconditionFailed" and op == "get":
                return ObjectStoreError(f"s3 get {self._url(key)}: object changed while streaming")
        tries = f" after {attempts} attempts in {elapsed:.1f}s" if attempts > 1 else ""
        cause = describe(exc)
        if earlier is not None:
            cause = f"{describe(earlier)} (the retry budget ran out during the last attempt)"
        message = f"s3 {op} {self._url(key)} failed{tries}: {cause}"
        if classify(exc) == Kind.FATAL:
            return ObjectStoreError(message)
        return TemporaryFailure(message)  # an outage or throttling that outlasted the retries


async def _gather_or_cancel(coros: list[Awaitable[T]]) -> list[T]:
    """Like asyncio.gather, but the first failure cancels the siblings instead of orphaning them."""
    tasks = [asyncio.ensure_future(coro) for coro in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@contextlib.asynccontextmanager
async def open_s3_object_store(
    bucket: str,
    prefix: str = "",
    *,
    max_concurrency: int = 16,
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    endpoint_url: str | None = None,
    backoff: Backoff | None = None,
    limits: S3Limits | None = None,
) -> AsyncIterator[S3ObjectStore]:
    """S3ObjectStore on a client from the standard AWS chain (env, profiles, IRSA).

    endpoint_url=None lets botocore resolve AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and the
    profile's endpoint_url itself. botocore's retries are off: S3ObjectStore is the one layer.
    limits (default S3Limits()) sets the timeouts and, unless backoff is given, the retry budget.
    """
    import aioboto3
    from aiobotocore.config import AioConfig

    limits = limits or S3Limits()
    config = AioConfig(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max(max_concurrency, 10),
        connect_timeout=limits.connect_timeout_s,
        read_timeout=limits.read_timeout_s,
    )
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=endpoint_url, config=config) as client:
        yield S3ObjectStore(
            client=client,
            bucket=bucket,
            prefix=prefix,
            max_concurrency=max_concurrency,
            multipart_threshold=multipart_threshold,
            backoff=backoff or _budgeted(limits.retry_budget_s),
        )


def _budgeted(budget_s: float) -> Backoff:
    # The budget, not a count, ends the retries: attempts only guards against a zero delay loop.
    return Backoff(attempts=10_000, base_s=0.2, cap_s=10.0, budget_s=budget_s)
