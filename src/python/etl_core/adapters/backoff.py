"""Retry timing shared by the network adapters: capped exponential backoff with full jitter.

Kept hand-written for S3ObjectStore and HttpRecordSource after weighing the libraries (issue 9);
stamina does the simpler retries (the SQLite history's open, Delta compaction conflicts).

- botocore's standard retry mode (the S3 client) counts attempts but has no time budget, so
  S3Limits' "each request and its retries end within retry_budget_s, then exit 75" would still need
  our own clock around it, and a request cut off there could no longer say how often it was tried.
  Its client-wide retry quota (500 tokens, 5 per retry, 10 per timeout) stops all retries after
  about 50 timeouts in an outage, long before the budget. It does not retry
  ConditionalRequestConflict (a concurrent conditional put, which AWS says to retry), does not
  resume a body stream that broke mid-read (S3ObjectStore.stream does, with a Range request),
  sleeps while holding the store's concurrency slot, and its delays (1 s doubling to 20 s) cannot
  be shortened, so the fault-injection tests in tests/python/integration/s3_object_store_test.py
  would wait seconds per retry.
- stamina (HttpRecordSource) takes a server's Retry-After as a custom backoff, but its sleep cannot
  be replaced and its testing mode sets every wait, Retry-After included, to 0: the tests that a
  429 waits at least its Retry-After (7 s, and an HTTP date ~30 s ahead) could only hold by
  sleeping those seconds. Backoff takes a `sleep`, so they record the wait instead.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import attrs

Sleep = Callable[[float], Awaitable[None]]


@attrs.frozen
class Backoff:
    """How often and how patiently an adapter retries a transient failure.

    `attempts` counts every try, the first included: attempts=1 means "never retry".
    `budget_s`, when set, also bounds the time from the first try: no retry starts (or sleeps)
    past it, and an adapter may cut an attempt off there (S3ObjectStore does). Whichever of
    attempts and budget_s runs out first ends the retries.
    Delays follow the AWS "full jitter" scheme: uniform(0, min(cap_s, base_s * 2**retry)),
    which spreads retrying clients apart instead of having them return in lock step.
    """

    attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    base_s: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    cap_s: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    budget_s: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0))
    )
    sleep: Sleep = attrs.field(default=asyncio.sleep, eq=False, repr=False)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        ceiling = min(self.cap_s, self.base_s * (2**retry))
        return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not cryptography

    def within_budget(self, elapsed_s: float, delay_s: float) -> bool:
        """True if a retry after sleeping delay_s starts inside the budget (or there is none)."""
        return self.budget_s is None or elapsed_s + delay_s < self.budget_s

    async def pause(self, retry: int, at_least: float = 0.0) -> None:
        """Sleep before retry number `retry`, at least `at_least` (a server's Retry-After)."""
        await self.sleep(max(at_least, self.delay(retry)))


NO_RETRY = Backoff(attempts=1)
