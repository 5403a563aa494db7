"""Tests for get_s3_files' key mapping, dating and same-content rule."""

from __future__ import annotations

import datetime as dt

import pytest
from etl_core.errors import ConfigError
from etl_core.model import ObjectInfo
from hypothesis import given
from hypothesis import strategies as st

from data_pipeline.copy.plan import (
    Action,
    CopyOptions,
    Entry,
    check_template,
    entry_document,
    manifest_key,
    same_content,
    target_of,
)
from data_pipeline.store.layout import partition_of

RUN_DATE = dt.date(2024, 5, 1)
MD5_A = "0cc175b9c0f1b6a831c399e269772661"
MD5_B = "92eb5ffee6ae2fec3ad71c777531578f"


def _options(**overrides: object) -> CopyOptions:
    values: dict[str, object] = {"agency_id": 10, "run_date": RUN_DATE}
    values.update(overrides)
    return CopyOptions(**values)  # type: ignore[arg-type]


def _info(key: str, *, modified: dt.datetime | None = None, **fields: object) -> ObjectInfo:
    values: dict[str, object] = {"key": key, "size": 1, "etag": MD5_A}
    values.update(fields)
    return ObjectInfo(**values, last_modified=modified)  # type: ignore[arg-type]


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_agency_prefix_joins_the_source_prefix_and_the_template() -> None:
    assert _options().agency_prefix == "agency_id=10/"
    assert _options(source_prefix="/uploads/docs/").agency_prefix == "uploads/docs/agency_id=10/"
    assert _options(template="{agency_id}/").agency_prefix == "10/"


@pytest.mark.parametrize(
    "template", ["agency_id/", "agency_id={agency_id}", "/{agency_id}/", "{agency}/{agency_id}/"]
)
def test_templates_that_could_match_other_agencies_or_fail_are_rejected(template: str) -> None:
    with pytest.raises(ConfigError, match="source template"):
        check_template(template)
    with pytest.raises(ConfigError):
        _options(template=template)


def test_an_undated_key_goes_to_its_last_modified_day_in_utc() -> None:
    info = _info("agency_id=10/reports/q1.pdf", modified=_at("2024-02-03T23:30:00-05:00"))
    target = target_of(info, _options())
    assert target is not None
    assert target.key == "bronze/agency_id=10/dt=2024-02-04/reports/q1.pdf"
    assert target.partition == "agency_id=10/dt=2024-02-04"


def test_a_dt_folder_in_the_key_dates_the_object_and_leaves_the_name() -> None:
    info = _info(
        "agency_id=10/scans/dt=2024-01-08/a.pdf", modified=_at("2024-05-01T00:00:00+00:00")
    )
    target = target_of(info, _options())
    assert target is not None
    assert target.key == "bronze/agency_id=10/dt=2024-01-08/scans/a.pdf"


def test_dt_flag_overrides_the_key_and_the_store() -> None:
    info = _info("agency_id=10/dt=2024-01-08/a.pdf", modified=_at("2024-02-01T00:00:00+00:00"))
    target = target_of(info, _options(day=dt.date(2023, 12, 31)))
    assert target is not None
    assert target.key == "bronze/agency_id=10/dt=2023-12-31/a.pdf"


def test_without_a_date_anywhere_the_run_date_is_used() -> None:
    target = target_of(_info("agency_id=10/a.pdf"), _options())
    assert target is not None
    assert target.key == "bronze/agency_id=10/dt=2024-05-01/a.pdf"


def test_an_impossible_dt_folder_is_only_a_name() -> None:
    target = target_of(_info("agency_id=10/dt=2024-13-45/a.pdf"), _options())
    assert target is not None
    assert target.key == "bronze/agency_id=10/dt=2024-05-01/dt=2024-13-45/a.pdf"


def test_a_file_named_like_a_dt_folder_keeps_its_name() -> None:
    target = target_of(_info("agency_id=10/dt=2024-01-08"), _options())
    assert target is not None
    assert target.key == "bronze/agency_id=10/dt=2024-05-01/dt=2024-01-08"


@pytest.mark.parametrize("key", ["agency_id=10/", "agency_id=10/folder/"])
def test_folder_markers_have_no_target(key: str) -> None:
    assert target_of(_info(key, size=0), _options()) is None


_SEGMENT = st.text(alphabet="abcXYZ019_-.=", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)


@given(
    agency=st.integers(min_value=0, max_value=10**6),
    folders=st.lists(_SEGMENT, max_size=3),
    name=_SEGMENT,
    day=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)),
)
def test_every_target_is_in_the_agencys_bronze_partition_of_its_day(
    agency: int, folders: list[str], name: str, day: dt.date
) -> None:
    options = _options(agency_id=agency, day=day)
    info = _info("/".join([f"agency_id={agency}", *folders, name]))
    target = target_of(info, options)
    assert target is not None
    assert partition_of(target.key) == (agency, day.isoformat())
    assert target.key.endswith("/" + name)


def test_same_size_and_md5_is_the_same_content() -> None:
    assert same_content(_info("s", size=3, etag=MD5_A), _info("d", size=3, etag=MD5_A))
    assert not same_content(_info("s", size=3, etag=MD5_A), _info("d", size=3, etag=MD5_B))
    assert not same_content(_info("s", size=3, etag=MD5_A), _info("d", size=4, etag=MD5_A))


def test_md5_decides_even_when_the_destination_is_newer() -> None:
    source = _info("s", etag=MD5_A, modified=_at("2024-01-01T00:00:00+00:00"))
    newer = _info("d", etag=MD5_B, modified=_at("2024-06-01T00:00:00+00:00"))
    assert not same_content(source, newer)


def test_a_multipart_etag_falls_back_to_the_times_like_aws_s3_sync() -> None:
    source = _info("s", etag=f"{MD5_A}-3", modified=_at("2024-01-02T00:00:00+00:00"))
    copied_later = _info("d", etag=MD5_B, modified=_at("2024-01-02T00:00:05+00:00"))
    copied_before_a_change = _info("d", etag=MD5_B, modified=_at("2024-01-01T00:00:00+00:00"))
    assert same_content(source, copied_later)
    assert not same_content(source, copied_before_a_change)
    assert not same_content(source, _info("d", etag=MD5_B))  # no time: not known to be current
    assert same_content(source, _info("d", etag=f"{MD5_A}-3"))  # identical etags always agree


def test_manifest_key_and_entry_json() -> None:
    assert manifest_key(10, "r1") == "_copies/get_s3_files/agency_id=10/r1.json"
    entry = Entry(
        source_key="agency_id=10/a.pdf",
        size=1,
        etag=MD5_A,
        last_modified=None,
        destination_key="bronze/agency_id=10/dt=2024-05-01/a.pdf",
        partition="agency_id=10/dt=2024-05-01",
        action=Action.COPIED,
    )
    assert entry_document(entry) == {
        "source_key": "agency_id=10/a.pdf",
        "size": 1,
        "etag": MD5_A,
        "destination_key": "bronze/agency_id=10/dt=2024-05-01/a.pdf",
        "partition": "agency_id=10/dt=2024-05-01",
        "action": "copied",
    }
