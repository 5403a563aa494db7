"""Tests of the reference-workload generator: layout, determinism, shapes and exact manifest."""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import re
import zoneinfo

import pytest
from etl_core.errors import ObjectStoreError
from etl_core.testing.fakes import FakeObjectStore

from data_pipeline.silver.agencies import parse_agencies
from data_pipeline.silver.reasons import VALIDATION_REASONS, DeadLetterReason
from data_pipeline.workload.generate import (
    AGENCIES_KEY,
    MANIFEST_KEY,
    WorkloadOptions,
    iter_workload_files,
    plan_files,
    write_workload,
)

UTC = dt.UTC


def _files(options: WorkloadOptions) -> dict[str, bytes]:
    return dict(iter_workload_files(options))


def _bronze(files: dict[str, bytes]) -> dict[str, list[bytes]]:
    return {
        key: gzip.decompress(body).splitlines() if key.endswith(".gz") else body.splitlines()
        for key, body in files.items()
        if key.startswith("bronze/")
    }


def test_same_options_give_identical_bytes_and_another_seed_does_not() -> None:
    options = WorkloadOptions(records=3000, files=7, bad_rate=0.05, dup_rate=0.2)

    first, second = _files(options), _files(options)
    other_seed = _files(WorkloadOptions(records=3000, files=7, bad_rate=0.05, dup_rate=0.2, seed=8))

    assert first == second
    assert other_seed.keys() == first.keys()
    assert other_seed != first


def test_files_are_agencies_csv_then_bronze_in_file_order_then_manifest() -> None:
    keys = [key for key, _ in iter_workload_files(WorkloadOptions(records=10, files=3))]

    assert keys == [
        AGENCIES_KEY,
        "bronze/agency_id=1/dt=2024-01-08/part-0.ndjson",
        "bronze/agency_id=2/dt=2024-01-08/part-0.ndjson",
        "bronze/agency_id=3/dt=2024-01-08/part-0.ndjson",
        MANIFEST_KEY,
    ]


def test_two_hundred_files_are_twenty_agencies_by_ten_days() -> None:
    planned = plan_files(WorkloadOptions(records=1_000_000, files=200))

    assert {(p.agency_id, p.day) for p in planned} == {
        (agency, dt.date(2024, 1, 8) + dt.timedelta(days=k))
        for agency in range(1, 21)
        for k in range(10)
    }
    assert {p.rows for p in planned} == {5000}


def test_parts_per_day_number_parts_within_a_day() -> None:
    planned = plan_files(WorkloadOptions(records=100, files=12, agencies=2, parts_per_day=3))

    assert [(p.agency_id, p.day.day, p.part) for p in planned if p.agency_id == 2] == [
        (2, 8, 0),
        (2, 8, 1),
        (2, 8, 2),
        (2, 9, 0),
        (2, 9, 1),
        (2, 9, 2),
    ]
    assert planned[0].key == "bronze/agency_id=1/dt=2024-01-08/part-0.ndjson"


def test_records_are_split_evenly_over_files() -> None:
    files = _bronze(_files(WorkloadOptions(records=1003, files=10)))

    assert sorted(len(lines) for lines in files.values()) == [100] * 7 + [101] * 3


def test_agencies_csv_has_twenty_agencies_with_the_required_zones() -> None:
    agencies = parse_agencies(_files(WorkloadOptions(records=0, files=1))[AGENCIES_KEY])

    assert sorted(agencies) == list(range(1, 21))
    zones = {agency.timezone for agency in agencies.values()}
    assert {
        "America/Phoenix",
        "Pacific/Honolulu",
        "America/Anchorage",
        "America/Indiana/Indianapolis",
    } <= zones


def test_gzip_bodies_hold_the_plain_bytes_without_name_or_mtime() -> None:
    plain = _files(WorkloadOptions(records=500, files=4))
    zipped = _files(WorkloadOptions(records=500, files=4, gzip=True))

    for key, body in plain.items():
        if key.startswith("bronze/"):
            packed = zipped[key + ".gz"]
            assert gzip.decompress(packed) == body
            assert packed[3] == 0  # FLG: no FNAME, no FCOMMENT
            assert packed[4:8] == b"\0\0\0\0"  # MTIME
    manifest = json.loads(zipped[MANIFEST_KEY])
    assert manifest["uncompressed_bytes"] == json.loads(plain[MANIFEST_KEY])["input_bytes"]
    assert manifest["input_bytes"] == sum(len(b) for k, b in zipped.items() if ".ndjson" in k)


def test_manifest_counts_balance_overall_and_per_agency() -> None:
    options = WorkloadOptions(records=20_000, files=40, bad_rate=0.08, dup_rate=0.15)
    manifest = json.loads(_files(options)[MANIFEST_KEY])

    assert manifest["input_rows"] == 20_000
    assert set(manifest["dead_letter"]) == set(VALIDATION_REASONS)
    for counts in [manifest, *manifest["agencies"].values()]:
        dead = sum(counts["dead_letter"].values())
        assert dead == counts["dead_letter_rows"]
        assert counts["input_rows"] == counts["silver_rows"] + counts["duplicates"] + dead
    generated = {reason for reason, n in manifest["dead_letter"].items() if n}
    assert generated == {
        DeadLetterReason.INVALID_JSON,
        DeadLetterReason.MISSING_RECORD_ID,
        DeadLetterReason.BAD_OCCURRED_AT,
        DeadLetterReason.LAT_OUT_OF_RANGE,
    }
    assert 0.12 < manifest["duplicates"] / 20_000 < 0.18
    assert 0.06 < manifest["dead_letter_rows"] / 20_000 < 0.1


_RECORD_ID = re.compile(r"A([0-9]{3})-[0-9]{8}")
_LOCAL = re.compile(r"[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}")


def _occurred(value: object, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    if isinstance(value, int):
        return dt.datetime.fromtimestamp(value, UTC)
    assert isinstance(value, str)
    if _LOCAL.fullmatch(value):
        return dt.datetime.strptime(value, "%m/%d/%Y %H:%M").replace(tzinfo=zone)
    assert value[-6] in "+-"
    return dt.datetime.fromisoformat(value)


def test_good_rows_have_the_documented_shapes_and_times() -> None:
    files = _files(WorkloadOptions(records=4000, files=8, bad_rate=0.0, dup_rate=0.0))
    agencies = parse_agencies(files[AGENCIES_KEY])
    forms: collections.Counter[str] = collections.Counter()

    for key, lines in _bronze(files).items():
        path_agency = int(key.split("agency_id=")[1].split("/")[0])
        day = dt.date.fromisoformat(key.split("dt=")[1].split("/")[0])
        zone = zoneinfo.ZoneInfo(agencies[path_agency].timezone)
        for line in lines:
            row = json.loads(line)
            match = _RECORD_ID.fullmatch(row["record_id"])
            assert match is not None
            assert int(match.group(1)) == row["agency_id"] == path_agency
            occurred = _occurred(row["occurred_at"], zone)
            forms["epoch" if isinstance(row["occurred_at"], int) else row["occurred_at"][2]] += 1
            local = occurred.astimezone(zone)
            assert local.date() == day
            assert dt.time(6, 0) <= local.time() <= dt.time(22, 59, 59)
            updated = dt.datetime.strptime(row["updated_at"], "%Y-%m-%dT%H:%M:%SZ")
            lag = updated.replace(tzinfo=UTC) - occurred
            assert dt.timedelta(seconds=60) <= lag <= dt.timedelta(days=3)
            assert row["record_type"].strip(" \t").lower() in {
                "incident",
                "complaint",
                "use_of_force",
                "commendation",
            }
            assert row["status"].strip(" \t").lower() in {"open", "closed", "pending"}
            assert set(row["officer"]) == {"badge", "name"}
            assert isinstance(row["location"]["lat"], str)
            assert row["amount"] is None or re.fullmatch(r"[0-9,]+\.[0-9]{2}", row["amount"])
            assert 0 <= len(row["tags"]) <= 3
    # 40% ISO (third character "2" of the year), 30% local "MM/...", 30% epoch.
    assert 0.37 < forms["2"] / 4000 < 0.43
    assert 0.27 < forms["/"] / 4000 < 0.33
    assert 0.27 < forms["epoch"] / 4000 < 0.33


def test_duplicates_revisit_good_records_of_the_same_agency_with_later_updated_at() -> None:
    files = _files(WorkloadOptions(records=6000, files=12, bad_rate=0.05, dup_rate=0.3, agencies=3))
    latest: dict[str, str] = {}
    first_file: dict[str, str] = {}
    revisits = cross_file = 0

    for key in sorted(_bronze(files), key=lambda k: (k.split("dt=")[1], k)):
        for line in _bronze(files)[key]:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            record_id = row.get("record_id")
            if record_id is None:
                continue
            if record_id in latest:
                revisits += 1
                cross_file += first_file[record_id] != key
                assert row["updated_at"] > latest[record_id]
                assert key.startswith(f"bronze/agency_id={row['agency_id']}/")
            latest[record_id] = row["updated_at"]
            first_file.setdefault(record_id, key)

    manifest = json.loads(files[MANIFEST_KEY])
    assert revisits == manifest["duplicates"]
    assert cross_file > revisits // 10


async def test_write_workload_puts_every_file_and_returns_the_manifest() -> None:
    store = FakeObjectStore()
    options = WorkloadOptions(records=300, files=5, gzip=True)

    manifest = await write_workload(store, options, concurrency=2)

    assert store.objects == _files(options)
    assert manifest == json.loads(store.objects[MANIFEST_KEY])


async def test_write_workload_stops_on_a_failed_put() -> None:
    store = FakeObjectStore()
    store.fail_on["put"] = ObjectStoreError("disk full")

    with pytest.raises(ObjectStoreError, match="disk full"):
        await write_workload(store, WorkloadOptions(records=300, files=5))

    assert MANIFEST_KEY not in store.objects


def test_options_refuse_rates_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="bad_rate"):
        WorkloadOptions(records=1, files=1, bad_rate=1.5)
