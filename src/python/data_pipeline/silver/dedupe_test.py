"""Tests of cross-file dedupe: latest updated_at wins, ties, invalid versions, counts."""

from __future__ import annotations

import itertools
import json
import random

import orjson
from hypothesis import given
from hypothesis import strategies as st

from data_pipeline.silver.agencies import Agency
from data_pipeline.silver.dedupe import Deduper
from data_pipeline.silver.file_transform import FileResult, transform_file

AGENCIES = {
    1: Agency(1, "Los Angeles Police Department", "CA", "America/Los_Angeles"),
    2: Agency(2, "Phoenix Police Department", "AZ", "America/Phoenix"),
}


def _line(record_id: str, updated_at: str, status: str = "open", **changes: object) -> bytes:
    record: dict[str, object] = {
        "record_id": record_id,
        "agency_id": 1,
        "record_type": "incident",
        "occurred_at": 1704700000,
        "updated_at": updated_at,
        "status": status,
        "location": {"lat": "34", "lon": "-118"},
    }
    record.update(changes)
    return json.dumps(record).encode()


def _file(day: str, *lines: bytes, part: int = 0, agency: int = 1) -> FileResult:
    key = f"bronze/agency_id={agency}/dt={day}/part-{part}.ndjson"
    return transform_file(key, b"\n".join(lines) + b"\n", AGENCIES)


def _survivors(deduper: Deduper) -> dict[str, dict[str, object]]:
    rows = (orjson.loads(line) for line in deduper)
    return {str(row["record_id"]): row for row in rows}


def test_latest_updated_at_survives_whatever_the_file_order() -> None:
    early = _file("2024-01-08", _line("A1", "2024-01-09T00:00:00Z", "open"))
    late = _file("2024-01-09", _line("A1", "2024-01-09T00:00:01Z", "closed"))

    for order in ([early, late], [late, early]):
        deduper = Deduper()
        for result in order:
            deduper.add(result)
        assert _survivors(deduper)["A1"]["status"] == "closed"
        assert _survivors(deduper)["A1"]["dt"] == "2024-01-09"
        assert deduper.counts.rows_duplicate == 1


def test_updated_at_is_compared_as_instants_not_text() -> None:
    deduper = Deduper()
    deduper.add(
        _file(
            "2024-01-08",
            _line("A1", "2024-01-08T22:00:00Z", "closed"),
            _line("A1", "2024-01-09T02:00:00+05:00", "open"),  # 21:00Z: earlier
            _line("A2", "2024-01-08T10:00:00.5Z", "closed"),
            _line("A2", "2024-01-08T10:00:00.25Z", "open"),  # same silver second, earlier
        )
    )

    survivors = _survivors(deduper)
    assert survivors["A1"]["status"] == "closed"
    assert survivors["A2"]["status"] == "closed"
    assert survivors["A2"]["updated_at"] == "2024-01-08T10:00:00Z"


def test_an_invalid_later_version_never_displaces_a_valid_row() -> None:
    deduper = Deduper()
    deduper.add(_file("2024-01-08", _line("A1", "2024-01-08T10:00:00Z", "open")))
    deduper.add(_file("2024-01-09", _line("A1", "2024-01-10T10:00:00Z", "reopened")))

    assert _survivors(deduper)["A1"]["status"] == "open"
    counts = deduper.counts
    assert (counts.rows_in, counts.rows_out, counts.rows_duplicate, counts.rows_dead_letter) == (
        2,
        1,
        0,
        1,
    )


def test_ties_go_to_the_later_source_path_then_the_later_line() -> None:
    stamp = "2024-01-08T10:00:00Z"
    first = _file("2024-01-08", _line("A1", stamp, "open"), _line("A2", stamp, "open"))
    second = _file("2024-01-08", _line("A1", stamp, "closed"), part=1)
    same_file = _file("2024-01-09", _line("A3", stamp, "open"), _line("A3", stamp, "pending"))

    for order in itertools.permutations([first, second, same_file]):
        deduper = Deduper()
        for result in order:
            deduper.add(result)
        survivors = _survivors(deduper)
        assert survivors["A1"]["status"] == "closed"
        assert survivors["A3"]["status"] == "pending"


def test_record_ids_are_compared_trimmed() -> None:
    deduper = Deduper()
    deduper.add(
        _file(
            "2024-01-08",
            _line(" A1", "2024-01-08T10:00:00Z", "open"),
            _line("A1\t", "2024-01-08T11:00:00Z", "closed"),
        )
    )

    assert list(_survivors(deduper)) == ["A1"]
    assert deduper.counts.rows_duplicate == 1


def test_partitions_group_survivors_by_row_agency_and_file_dt_in_record_id_order() -> None:
    deduper = Deduper()
    deduper.add(
        _file(
            "2024-01-08",
            _line("B", "2024-01-08T10:00:00Z"),
            _line("A", "2024-01-08T10:00:00Z"),
            _line("C", "2024-01-08T10:00:00Z", agency_id=2),
        )
    )
    deduper.add(_file("2024-01-09", _line("A", "2024-01-09T10:00:00Z")))

    partitions = deduper.partitions()

    assert list(partitions) == [(1, "2024-01-08"), (1, "2024-01-09"), (2, "2024-01-08")]
    assert [orjson.loads(r)["record_id"] for r in partitions[(1, "2024-01-08")]] == ["B"]
    assert [orjson.loads(r)["record_id"] for r in partitions[(1, "2024-01-09")]] == ["A"]
    assert len(deduper) == 3
    assert deduper.counts.balanced


versions = st.lists(
    st.tuples(
        st.sampled_from(["A1", "A2", "A3"]),
        st.integers(min_value=0, max_value=3),  # updated_at second: ties are likely
        st.sampled_from(["open", "closed", "pending", "bogus"]),
    ),
    max_size=12,
)


@given(st.lists(versions, min_size=1, max_size=4), st.randoms())
def test_outcome_and_counts_do_not_depend_on_file_order(
    files: list[list[tuple[str, int, str]]], rng: random.Random
) -> None:
    results = [
        _file(
            "2024-01-08",
            *(_line(rid, f"2024-01-08T10:00:0{sec}Z", status) for rid, sec, status in lines),
            part=part,
        )
        for part, lines in enumerate(files)
    ]
    forward = Deduper()
    for result in results:
        forward.add(result)
    shuffled = Deduper()
    rng.shuffle(results)
    for result in results:
        shuffled.add(result)

    assert list(shuffled) == list(forward)
    assert shuffled.counts == forward.counts
    assert forward.counts.balanced
    expected: dict[str, tuple[tuple[int, str, int], str]] = {}
    for part, lines in enumerate(files):
        for line_no, (rid, sec, status) in enumerate(lines):
            if status != "bogus":
                key = (sec, f"part-{part}", line_no)
                if rid not in expected or key > expected[rid][0]:
                    expected[rid] = (key, status)
    assert {rid: row["status"] for rid, row in _survivors(forward).items()} == {
        rid: status for rid, (_, status) in expected.items()
    }
