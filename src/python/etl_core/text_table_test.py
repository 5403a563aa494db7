"""Text tables: columns aligned to their widest cell, numbers on the right."""

from __future__ import annotations

from etl_core import text_table


def test_columns_are_as_wide_as_their_widest_cell_and_numbers_align_right() -> None:
    table = text_table.aligned(
        ("NAME", "ROWS", "NOTE"), [("a", "1,000", "x"), ("longer", "7", "")], right={"ROWS"}
    )
    assert table.splitlines() == [
        "NAME     ROWS  NOTE",
        "a       1,000  x",
        "longer      7",
    ]


def test_a_header_wider_than_every_cell_sets_the_width() -> None:
    assert text_table.aligned(("AGENCY", "N"), [("1", "2")], right={"AGENCY", "N"}) == (
        "AGENCY  N\n     1  2"
    )


def test_no_rows_is_the_header_alone() -> None:
    assert text_table.aligned(("A", "B"), []) == "A  B"


def test_markdown_escapes_pipes_and_marks_right_aligned_columns() -> None:
    table = text_table.markdown(("name", "rows"), [("a|b", "3")], right={"rows"})
    assert table.splitlines() == ["| name | rows |", "| --- | ---: |", "| a\\|b | 3 |"]


def test_byte_size_uses_decimal_units_up_to_gb() -> None:
    assert text_table.byte_size(0) == "0 B"
    assert text_table.byte_size(999) == "999 B"
    assert text_table.byte_size(1000) == "1.0 kB"
    assert text_table.byte_size(617_000) == "617.0 kB"
    assert text_table.byte_size(2_500_000) == "2.5 MB"
    assert text_table.byte_size(3_000_000_000) == "3.0 GB"
    assert text_table.byte_size(4_000_000_000_000) == "4000.0 GB"
