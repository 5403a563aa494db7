"""Tests of the port conformance check: signatures and flavours, not just method names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import pytest

from etl_core.testing.conformance import assert_implements, port_problems


class Port(Protocol):
    async def get(self, key: str, *, fresh: bool = False) -> bytes:
        ...

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        ...


class Inner(Protocol):
    async def ping(self) -> None:
        ...


class Outer(Protocol):
    @property
    def inner(self) -> Inner:
        ...


class Good:
    async def get(self, key: str, *, fresh: bool = False, trace: bool = False) -> bytes:
        return b""

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        yield prefix


class Sync:
    def get(self, key: str, *, fresh: bool = False) -> bytes:
        return b""

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        yield prefix


class Renamed:
    async def get(self, name: str, *, fresh: bool = False) -> bytes:
        return b""

    async def keys(self, prefix: str = "x") -> AsyncIterator[str]:
        yield prefix


class Missing:
    async def get(self, key: str, needed: int, *, fresh: bool = False) -> bytes:
        return b""


class PingsSync:
    def ping(self) -> None:
        return None


class HasInner:
    inner = PingsSync()


def test_a_conforming_object_has_no_problems() -> None:
    assert port_problems(Good(), Port) == []
    assert_implements(Good(), Port)


def test_a_plain_method_where_the_port_awaits_is_a_problem() -> None:
    assert port_problems(Sync(), Port) == ["Sync.get: is `def`, the port declares `async def`"]


def test_renamed_parameters_and_other_defaults_are_problems() -> None:
    assert port_problems(Renamed(), Port) == [
        "Renamed.get: has no parameter 'key'",
        "Renamed.get: extra parameter 'name' has no default",
        "Renamed.keys: parameter 'prefix' defaults to 'x', the port's to ''",
    ]


def test_missing_methods_and_required_extra_parameters_are_problems() -> None:
    assert port_problems(Missing(), Port) == [
        "Missing.get: extra parameter 'needed' has no default",
        "Missing.keys: missing",
    ]
    with pytest.raises(AssertionError, match="Missing does not implement Port"):
        assert_implements(Missing(), Port)


def test_properties_are_checked_against_the_port_they_return() -> None:
    assert port_problems(HasInner(), Outer) == [
        "PingsSync.ping: is `def`, the port declares `async def`"
    ]
