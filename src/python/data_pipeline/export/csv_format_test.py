"""CSV of silver rows: header, cells, RFC 4180 quoting, reversible tags."""

from __future__ import annotations

import csv
import io

import orjson
from hypothesis import given
from hypothesis import strategies as st

from data_pipeline.export.csv_format import HEADER, CsvWriter, csv_cells, join_tags, split_tags
from data_pipeline.silver.schema import SILVER_FIELDS

ROW = {
    "record_id": "A003-00000001", "agency_id": 3, "dt": "2024-01-08",
    "agency_name": "Honolulu Police Department", "agency_state": "HI",
    "record_type": "incident", "status": "open", "occurred_at": "2024-01-08T21:50:53Z",
    "updated_at": "2024-01-09T16:04:06Z", "officer_badge": "45", "officer_last": "O'Brien",
    "officer_first": None, "lat": 21.141979, "lon": -157.86, "amount": 1234.5,
    "tags": ["night", "k9"],
}  # fmt: skip


def test_the_header_is_the_silver_keys_in_order() -> None:
    assert HEADER == SILVER_FIELDS


def test_cells_write_null_as_empty_numbers_as_in_json_and_tags_joined() -> None:
    cells = dict(zip(HEADER, csv_cells(ROW), strict=True))

    assert cells["officer_first"] == ""
    assert (cells["agency_id"], cells["lat"], cells["amount"]) == ("3", "21.141979", "1234.5")
    assert cells["tags"] == "night|k9"


@given(st.lists(st.text()))
def test_tags_survive_the_join(tags: list[str]) -> None:
    joined = join_tags(tags)

    assert split_tags(joined) == (tags if tags != [""] else [])


def test_a_separator_or_backslash_in_a_tag_is_escaped() -> None:
    assert join_tags(["a|b", "c\\", ""]) == "a\\|b|c\\\\|"


def test_fields_with_commas_quotes_and_newlines_are_quoted_rfc_4180() -> None:
    tricky = {**ROW, "agency_name": 'The "Best", PD', "officer_last": "line\nbreak"}
    out = io.StringIO(newline="")
    writer = CsvWriter(out)
    writer.write(orjson.dumps(tricky))
    writer.write(orjson.dumps(ROW))

    text = out.getvalue()
    assert text.count("\r\n") == 3  # header and two records; the LF inside a field stays bare
    assert '"The ""Best"", PD"' in text
    assert '"line\nbreak"' in text
    header, first, second = csv.reader(io.StringIO(text, newline=""))
    assert header == list(SILVER_FIELDS)
    assert first[HEADER.index("agency_name")] == 'The "Best", PD'
    assert second == csv_cells(ROW)
    assert writer.rows == 2
