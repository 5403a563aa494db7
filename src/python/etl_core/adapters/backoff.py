"""Retry timing shared by the network adapters: capped exponential backoff with full jitter."""

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
