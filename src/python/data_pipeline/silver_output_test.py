"""Tests of a partition's output files: names, splitting, dead-letter rows, no empty files."""

from __future__ import annotations

import json

import pytest
from etl_core.model import Counts, DeadLetter

from data_pipeline.silver_output import build_output

PART = "agency_id=1/dt=2024-01-08"


def test_silver_is_split_by_rows_and_dead_letters_go_to_one_file() -> None:
    dead = [DeadLetter("invalid_json", "agency_id=1/dt=2024-01-08/part-0.ndjson", "{", detail="x")]

    output = build_output(PART, "r1", [b"1", b"2", b"3"], dead, Counts(rows_in=4), rows_per_file=2)

    assert output.files == {
        f"silver/{PART}/part-r1-0.ndjson": b"1\n2\n",
        f"silver/{PART}/part-r1-1.ndjson": b"3\n",
        f"deadletter/{PART}/part-r1.ndjson": json.dumps(
            {"reason": "invalid_json", "source": dead[0].source, "raw": "{", "run_id": "r1"},
            separators=(",", ":"),
        ).encode()
        + b"\n",
    }
    assert output.counts.bytes_out == output.bytes_out == sum(map(len, output.files.values()))


def test_an_empty_partition_has_no_files_but_a_fingerprint() -> None:
    output = build_output(PART, "r1", [], [], Counts())
    assert output.files == {}
    assert output.fingerprint == build_output(PART, "r2", [], [], Counts()).fingerprint


def test_rows_per_file_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rows_per_file"):
        build_output(PART, "r1", [], [], Counts(), rows_per_file=0)
