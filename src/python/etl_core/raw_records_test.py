"""The reserved record keys: raw lines and provenance."""

from __future__ import annotations

from etl_core.raw_records import RAW_KEY, SOURCE_KEY, payload, provenance, raw_record, raw_text


def test_a_raw_record_carries_its_text_and_optional_provenance() -> None:
    assert raw_text(raw_record("{broken")) == "{broken"
    assert raw_text(raw_record("{broken", "a/b.ndjson:3")) == "{broken"
    assert provenance(raw_record("{broken", "a/b.ndjson:3")) == ("a/b.ndjson", 3)


def test_an_upstream_object_with_a_raw_field_among_others_is_an_ordinary_record() -> None:
    assert raw_text({RAW_KEY: "x", "record_id": "a"}) is None
    assert raw_text({RAW_KEY: 5}) is None
    assert raw_text({"record_id": "a"}) is None


def test_provenance_needs_a_path_and_a_line_number() -> None:
    assert provenance({SOURCE_KEY: "agency_id=1/dt=2024-01-08/part-0.ndjson:12"}) == (
        "agency_id=1/dt=2024-01-08/part-0.ndjson",
        12,
    )
    assert provenance({SOURCE_KEY: "no-line"}) is None
    assert provenance({SOURCE_KEY: ":3"}) is None
    assert provenance({SOURCE_KEY: 3}) is None
    assert provenance({}) is None


def test_payload_drops_only_the_provenance() -> None:
    record = {"record_id": "a", SOURCE_KEY: "p:1"}

    assert payload(record) == {"record_id": "a"}
    assert payload({"record_id": "a"}) == {"record_id": "a"}
