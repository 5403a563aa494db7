"""An agency with nothing for it (unknown to agencies.csv, no bronze file) fails, saying so."""

from __future__ import annotations

import pytest
from etl_core.errors import NothingForAgency, UnknownAgency
from etl_core.testing.fake_tables import FakeTables
from etl_core.testing.fakes import FakeObjectStore, FakeRunHistory
from etl_core.testing.run_contexts import started_run

from data_pipeline.bronze_to_silver.presence import id_ranges, require_known
from data_pipeline.bronze_to_silver.run import PromoteOptions, promote
from data_pipeline.silver.agencies import parse_agencies
from data_pipeline.workload.bronze_store import workload_bronze
from data_pipeline.workload.generate import WorkloadOptions

WORKLOAD = WorkloadOptions(records=60, files=2, agencies=2, seed=5)


def _lake() -> FakeObjectStore:
    return workload_bronze(WORKLOAD)


async def _promote(bronze: FakeObjectStore, agency_id: int, tables: FakeTables) -> None:
    ctx = await started_run(FakeRunHistory(), "bronze_to_silver", agency_id=agency_id)
    await promote(ctx, bronze, bronze, tables, PromoteOptions(workers=1))


@pytest.mark.parametrize(
    ("ids", "text"),
    [([], ""), ([3], "3"), ([5, 1, 2, 3, 9, 10], "1-3, 5, 9-10"), ([2, 2, 1], "1-2")],
)
def test_ids_read_as_ranges(ids: list[int], text: str) -> None:
    assert id_ranges(ids) == text


def test_an_agency_the_file_does_not_list_is_unknown_naming_the_file_and_what_it_lists() -> None:
    agencies = parse_agencies(_lake().objects["agencies.csv"])

    assert require_known(1, agencies, "agencies.csv").agency_id == 1
    with pytest.raises(UnknownAgency) as raised:
        require_known(123, agencies, "s3://b/agencies.csv")

    assert str(raised.value) == (
        "agency 123 is not in the agencies file s3://b/agencies.csv (it lists agencies 1-2): "
        "nothing to do for it; check --agency-id, or add the agency to the agencies file"
    )


async def test_promoting_an_unknown_agency_fails_and_writes_nothing() -> None:
    bronze, tables = _lake(), FakeTables()
    before = dict(bronze.objects)

    with pytest.raises(UnknownAgency, match="agency 123 is not in the agencies file agencies.csv"):
        await _promote(bronze, 123, tables)

    assert bronze.objects == before
    assert await tables.silver.version(123) == await tables.deadletter.version(123) == 0


async def test_an_unknown_agency_with_bronze_fails_rather_than_dead_lettering_every_row() -> None:
    bronze, tables = _lake(), FakeTables()
    for key, body in list(bronze.objects.items()):
        if key.startswith("bronze/agency_id=1/"):
            bronze.objects[key.replace("agency_id=1/", "agency_id=77/")] = body

    with pytest.raises(UnknownAgency, match="agency 77 is not in"):
        await _promote(bronze, 77, tables)

    assert await tables.deadletter.version(77) == 0


async def test_a_prefix_holding_only_documents_is_nothing_to_fold_naming_one() -> None:
    bronze, tables = _lake(), FakeTables()
    for key in [k for k in bronze.objects if k.startswith("bronze/agency_id=2/")]:
        del bronze.objects[key]
    bronze.objects["bronze/agency_id=2/dt=2024-01-08/scans/b.png"] = b"\x89PNG"
    bronze.objects["bronze/agency_id=2/dt=2024-01-08/report.pdf"] = b"%PDF"

    with pytest.raises(NothingForAgency) as raised:
        await _promote(bronze, 2, tables)

    message = str(raised.value)
    assert message.startswith("agency 2 (Phoenix Police Department): no bronze to fold: ")
    assert "bronze/agency_id=2/ holds 2 object(s) but no bronze file (.ndjson or .ndjson.gz)" in (
        message
    )
    assert "e.g. bronze/agency_id=2/dt=2024-01-08/report.pdf" in message
    assert not isinstance(raised.value, UnknownAgency)
    assert await tables.silver.version(2) == 0
