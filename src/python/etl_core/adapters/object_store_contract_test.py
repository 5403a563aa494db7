"""The ObjectStore contract, run against the fake and the local directory store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from etl_core.adapters.local_object_store import open_local_object_store
from etl_core.ports import ObjectStore
from etl_core.testing.fakes import FakeObjectStore
from etl_core.testing.object_store_contract import ObjectStoreContract


class TestFakeObjectStore(ObjectStoreContract):
    @pytest.fixture()
    def store(self) -> ObjectStore:
        return FakeObjectStore()


class TestLocalObjectStore(ObjectStoreContract):
    @pytest.fixture()
    async def store(self, tmp_path: Path) -> AsyncIterator[ObjectStore]:
        async with open_local_object_store(tmp_path / "store") as store:
            yield store
