"""Reusable LeaseStore contract suite: subclass LeaseContract and provide a `leases` fixture.

Expiry is tested against the store's real clock with short TTLs (`short_ttl`, tunable for
backends whose clocks are coarse or remote). Lease names are unique per test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from etl_core.ports import LeaseStore
from etl_core.testing.conformance import assert_implements

LONG = dt.timedelta(minutes=10)


class LeaseContract:
    """Behaviour every LeaseStore adapter and fake must show."""

    short_ttl: dt.timedelta = dt.timedelta(milliseconds=200)
    racers: int = 16

    @pytest.fixture()
    def name(self) -> str:
        """A lease name unique to this test."""
        return f"contract/{uuid.uuid4().hex}"

    async def expire(self, leases: LeaseStore) -> None:
        """Let a lease taken with short_ttl expire; override to advance a fake clock instead."""
        await asyncio.sleep(self.short_ttl.total_seconds() * 1.5 + 0.05)

    async def test_implements_the_port(self, leases: LeaseStore) -> None:
        assert_implements(leases, LeaseStore)

    async def test_free_lease_is_acquired(self, leases: LeaseStore, name: str) -> None:
        assert await leases.acquire(name, "run-a", LONG) is True

    async def test_acquire_is_reentrant_for_the_holder(self, leases: LeaseStore, name: str) -> None:
        assert await leases.acquire(name, "run-a", LONG) is True
        assert await leases.acquire(name, "run-a", LONG) is True

    async def test_another_owner_is_refused_while_the_lease_is_held(
        self, leases: LeaseStore, name: str
    ) -> None:
        assert await leases.acquire(name, "run-a", LONG) is True
        assert await leases.acquire(name, "run-b", LONG) is False
        assert await leases.renew(name, "run-b", LONG) is False

    async def test_leases_with_different_names_are_independent(
        self, leases: LeaseStore, name: str
    ) -> None:
        assert await leases.acquire(f"{name}/agency=1", "run-a", LONG) is True
        assert await leases.acquire(f"{name}/agency=2", "run-b", LONG) is True

    async def test_expired_lease_is_taken_over(self, leases: LeaseStore, name: str) -> None:
        assert await leases.acquire(name, "run-a", self.short_ttl) is True
        await self.expire(leases)
        assert await leases.acquire(name, "run-b", LONG) is True
        assert await leases.acquire(name, "run-a", LONG) is False

    async def test_renew_keeps_the_lease_past_its_first_ttl(
        self, leases: LeaseStore, name: str
    ) -> None:
        assert await leases.acquire(name, "run-a", self.short_ttl) is True
        assert await leases.renew(name, "run-a", LONG) is True
        await self.expire(leases)
        assert await leases.acquire(name, "run-b", LONG) is False

    async def test_reentrant_acquire_extends_the_lease(self, leases: LeaseStore, name: str) -> None:
        assert await leases.acquire(name, "run-a", self.short_ttl) is True
        assert await leases.acquire(name, "run-a", LONG) is True
        await self.expire(leases)
        assert await leases.acquire(name, "run-b", LONG) is False

    async def test_renew_fails_once_the_lease_was_taken_over(
        self, leases: LeaseStore, name: str
    ) -> None:
        assert await leases.acquire(name, "run-a", self.short_ttl) is True
        await self.expire(leases)
        assert await leases.acquire(name, "run-b", LONG) is True
        assert await leases.renew(name, "run-a", LONG) is False

    async def test_renew_of_a_lease_never_taken_fails(self, leases: LeaseStore, name: str) -> None:
        assert await leases.renew(name, "run-a", LONG) is False

    async def test_release_frees_the_lease_and_is_idempotent(
        self, leases: LeaseStore, name: str
    ) -> None:
        assert await leases.acquire(name, "run-a", LONG) is True
        await leases.release(name, "run-a")
        await leases.release(name, "run-a")
        assert await leases.renew(name, "run-a", LONG) is False
        assert await leases.acquire(name, "run-b", LONG) is True

    async def test_release_by_another_owner_changes_nothing(
        self, leases: LeaseStore, name: str
    ) -> None:
        assert await leases.acquire(name, "run-a", LONG) is True
        await leases.release(name, "run-b")
        assert await leases.acquire(name, "run-b", LONG) is False
        assert await leases.renew(name, "run-a", LONG) is True

    async def test_concurrent_acquire_has_exactly_one_winner(
        self, leases: LeaseStore, name: str
    ) -> None:
        owners = [f"run-{i}" for i in range(self.racers)]
        results = await asyncio.gather(*(leases.acquire(name, o, LONG) for o in owners))
        assert sum(results) == 1
        winner = owners[results.index(True)]
        assert await leases.renew(name, winner, LONG) is True

    async def test_holder_names_the_owner_and_expiry_until_released(
        self, leases: LeaseStore, name: str
    ) -> None:
        assert await leases.holder(name) is None
        assert await leases.acquire(name, "run-a", LONG) is True
        held = await leases.holder(name)
        assert held is not None
        assert (held.name, held.owner) == (name, "run-a")
        assert held.expires_at > dt.datetime.now(dt.UTC) + LONG / 2
        await leases.release(name, "run-a")
        assert await leases.holder(name) is None
