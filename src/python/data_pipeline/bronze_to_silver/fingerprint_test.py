"""Tests of input and content fingerprints: what changes them and what must not."""

from __future__ import annotations

import pytest
from etl_core.model import DeadLetter, ObjectInfo

from data_pipeline.bronze_to_silver import fingerprint
from data_pipeline.bronze_to_silver.fingerprint import content_fingerprint, input_fingerprint

AGENCIES = ObjectInfo("agencies.csv", 900, "a1")
FILES = [
    ObjectInfo("bronze/agency_id=1/dt=2024-01-08/part-0.ndjson", 10, "e0"),
    ObjectInfo("bronze/agency_id=1/dt=2024-01-09/part-0.ndjson", 20, "e1"),
]
DEAD = [DeadLetter("invalid_json", "agency_id=1/dt=2024-01-08/part-0.ndjson", "{", "r1")]


def test_input_fingerprint_does_not_depend_on_listing_order() -> None:
    assert input_fingerprint(AGENCIES, FILES) == input_fingerprint(AGENCIES, FILES[::-1])


def test_input_fingerprint_changes_with_any_file_size_etag_key_or_the_agencies() -> None:
    base = input_fingerprint(AGENCIES, FILES)
    changed = [
        input_fingerprint(AGENCIES, [FILES[0], ObjectInfo(FILES[1].key, 21, "e1")]),
        input_fingerprint(AGENCIES, [FILES[0], ObjectInfo(FILES[1].key, 20, "e2")]),
        input_fingerprint(AGENCIES, FILES[:1]),
        input_fingerprint(ObjectInfo("agencies.csv", 900, "a2"), FILES),
    ]
    assert len({base, *changed}) == 5


def test_input_fingerprint_changes_with_the_transform_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = input_fingerprint(AGENCIES, FILES)
    monkeypatch.setattr(fingerprint, "TRANSFORM_VERSION", "bronze_to_silver/999")
    assert input_fingerprint(AGENCIES, FILES) != base


def test_content_fingerprint_ignores_the_run_id_of_dead_letters() -> None:
    other_run = [DeadLetter(d.reason, d.source, d.raw, "r2") for d in DEAD]
    assert content_fingerprint([b"{}"], DEAD) == content_fingerprint([b"{}"], other_run)


def test_content_fingerprint_changes_with_a_silver_byte_or_a_dead_letter() -> None:
    base = content_fingerprint([b'{"a":1}'], DEAD)
    assert content_fingerprint([b'{"a":2}'], DEAD) != base
    assert content_fingerprint([b'{"a":1}'], []) != base
    assert (
        content_fingerprint([b'{"a":1}'], [DeadLetter("bad_status", DEAD[0].source, "{")]) != base
    )
    assert content_fingerprint([b'{"a":1}', b""], DEAD) != base
