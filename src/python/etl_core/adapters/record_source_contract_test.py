"""The RecordSource contract, run against the fake (database and HTTP sources add theirs)."""

from __future__ import annotations

import pytest

from etl_core.testing.fakes import FakeRecordSource
from etl_core.testing.record_source_contract import RecordSourceContract, SeededSource


class TestFakeRecordSource(RecordSourceContract):
    @pytest.fixture()
    def seeded(self) -> SeededSource:
        records = [{"record_id": f"A010-{i:08d}", "agency_id": 10} for i in range(23)]
        return SeededSource(FakeRecordSource(records, batch_size=5), 10, records)
