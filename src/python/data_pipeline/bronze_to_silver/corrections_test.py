"""Tests of the corrections file format, the stored corrections and their resolution."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from etl_core.errors import ConfigError, DataError
from etl_core.testing.fakes import FakeObjectStore

from data_pipeline.bronze_to_silver.corrections import (
    Correction,
    StoredCorrections,
    corrections_body,
    line_key,
    load_corrections,
    parse_corrections,
)
from data_pipeline.replay.select import DeadRow, group_rows, resolve_corrections

SOURCE = "agency_id=1/dt=2024-01-08/part-0.ndjson"


def _body(*rows: object) -> bytes:
    return b"\n".join(orjson.dumps(row) for row in rows) + b"\n"


def test_a_dead_letter_row_with_a_corrected_key_is_a_correction() -> None:
    row = {"reason": "invalid_json", "source": SOURCE, "raw": "{oops", "run_id": "r1",
           "corrected": '{"ok": 1}'}  # fmt: skip

    [correction] = parse_corrections(_body(row) + b" \n\n", name="fix.ndjson", agency_id=1)

    assert correction == Correction(SOURCE, hashlib.sha256(b"{oops").hexdigest(), '{"ok": 1}')


def test_raw_sha256_names_the_line_instead_of_its_text() -> None:
    digest = line_key("{oops")

    [correction] = parse_corrections(
        _body({"source": SOURCE, "raw_sha256": digest, "corrected": "{}"}), name="f", agency_id=1
    )

    assert correction.raw_sha256 == digest


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([1], "not a JSON object"),
        ({"source": "agency_id=2/dt=2024-01-08/part-0.ndjson", "raw": "x", "corrected": "y"},
         "bronze file of agency 1"),
        ({"source": SOURCE, "corrected": "y"}, "needs raw"),
        ({"source": SOURCE, "raw_sha256": "abc", "corrected": "y"}, "needs raw"),
        ({"source": SOURCE, "raw": "x", "corrected": " \t"}, "non-blank"),
        ({"source": SOURCE, "raw": "x", "corrected": "a\nb"}, "one line"),
    ],
)  # fmt: skip
def test_a_malformed_correction_is_a_usage_error_naming_file_and_line(
    row: object, message: str
) -> None:
    body = b"\n" + orjson.dumps(row)

    with pytest.raises(ConfigError, match=f"fix.ndjson:2: .*{message}"):
        parse_corrections(body, name="fix.ndjson", agency_id=1)


def test_a_lone_surrogate_cannot_be_a_replacement_line() -> None:
    body = b'{"source": "%s", "raw": "x", "corrected": "\\ud800"}' % SOURCE.encode()

    with pytest.raises(ConfigError, match="f:1: "):  # orjson refuses it as JSON
        parse_corrections(body, name="f", agency_id=1)


def test_not_json_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="f:1: not a JSON object"):
        parse_corrections(b"{nope\n", name="f", agency_id=1)


async def test_stored_corrections_fold_in_sequence_order_later_wins() -> None:
    key = line_key("{bad")
    store = FakeObjectStore()
    first = corrections_body([Correction(SOURCE, key, "{one}")], "r1")
    second = corrections_body([Correction(SOURCE, key, "{two}")], "r2")
    store.objects["corrections/agency_id=1/000001-r1.ndjson"] = first
    store.objects["corrections/agency_id=1/000002-r2.ndjson"] = second
    store.objects["corrections/agency_id=1/README"] = b"not a corrections object"

    stored = await load_corrections(store, 1)

    assert stored.fixes == {SOURCE: {key: "{two}"}}
    assert stored.replacement(SOURCE, key) == "{two}"
    assert stored.replaced_by(SOURCE, "{two}") == (key,)
    assert stored.once_replaced_by(SOURCE, line_key("{one}")) == {key}
    assert stored.next_key("r3") == "corrections/agency_id=1/000003-r3.ndjson"
    assert stored.bronze_fixes() == {f"bronze/{SOURCE}": {key: b"{two}"}}


async def test_an_agency_without_corrections_starts_at_sequence_one() -> None:
    stored = await load_corrections(FakeObjectStore(), 7)

    assert stored.fixes == {}
    assert stored.next_key("r1") == "corrections/agency_id=7/000001-r1.ndjson"


async def test_damaged_stored_corrections_are_a_data_error_naming_the_object() -> None:
    key = "corrections/agency_id=7/000001-r1.ndjson"
    store = FakeObjectStore({key: b"not a correction\n"})

    with pytest.raises(DataError, match=f"stored corrections damaged: {key}:1: not a JSON obj"):
        await load_corrections(store, 7)


def test_merged_corrections_override_the_stored_ones() -> None:
    key = line_key("{bad")
    stored = _stored({SOURCE: {key: "{one}"}})

    merged = stored.merged([Correction(SOURCE, key, "{two}")])

    assert merged.replacement(SOURCE, key) == "{two}"
    assert stored.replacement(SOURCE, key) == "{one}"


def _stored(fixes: dict[str, dict[str, str]]) -> StoredCorrections:
    return StoredCorrections(1, {}).merged(
        Correction(source, key, text)
        for source, by_key in fixes.items()
        for key, text in by_key.items()
    )


def test_a_correction_of_a_shown_corrected_text_is_keyed_by_the_original_line() -> None:
    original = line_key("{bad")
    stored = _stored({SOURCE: {original: "{still bad"}})
    groups = group_rows([DeadRow("p", "invalid_json", SOURCE, "{still bad", "r2")], stored)

    resolved = resolve_corrections(
        [Correction(SOURCE, line_key("{still bad"), "{}")], groups, stored
    )

    assert resolved.new == (Correction(SOURCE, original, "{}"),)


def test_a_correction_stored_as_given_is_already_applied_not_unmatched() -> None:
    original = line_key("{bad")
    stored = _stored({SOURCE: {original: "{}"}})

    resolved = resolve_corrections([Correction(SOURCE, original, "{}")], (), stored)

    assert (resolved.new, resolved.already) == ((), 1)


def test_a_correction_of_no_selected_row_is_refused() -> None:
    with pytest.raises(ConfigError, match="1 correction.*match no selected dead-letter row"):
        resolve_corrections([Correction(SOURCE, line_key("x"), "{}")], (), _stored({}))
