"""The TableMaintenance contract, run against the fake and the Delta adapter on local disk."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs
import pytest

from etl_core.testing.delta_world import DeltaWorld
from etl_core.testing.fakes import FakeTableMaintenance
from etl_core.testing.table_maintenance_contract import MaintenanceWorld, TableMaintenanceContract


@attrs.define
class FakeWorld:
    maintenance: FakeTableMaintenance = attrs.field(factory=FakeTableMaintenance)

    async def write(self, agency_id: int, day: dt.date, files: int, *, fold: int = 1) -> None:
        self.maintenance.write(agency_id, day, *([1500] * files), fold=fold)


class TestFakeTableMaintenance(TableMaintenanceContract):
    @pytest.fixture()
    def world(self) -> MaintenanceWorld:
        return FakeWorld()


class TestDeltaTableMaintenance(TableMaintenanceContract):
    @pytest.fixture()
    def world(self, tmp_path: Path) -> MaintenanceWorld:
        return DeltaWorld.create(tmp_path / "store")
