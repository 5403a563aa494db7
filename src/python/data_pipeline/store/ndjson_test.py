"""Tests of the NDJSON body helpers."""

from __future__ import annotations

import json

from etl_core.model import DeadLetter

from data_pipeline.store.ndjson import dead_letters_ndjson, join_lines


def test_join_lines_terminates_every_line() -> None:
    assert join_lines([b"{}", b"{}"]) == b"{}\n{}\n"
    assert join_lines([]) == b""


def test_dead_letter_rows_carry_reason_source_raw_and_run() -> None:
    dead = DeadLetter(reason="invalid_json", source="agency_id=1/dt=2024-01-08/p.ndjson", raw="{")

    body = dead_letters_ndjson([dead], run_id="r1")

    assert [json.loads(line) for line in body.splitlines()] == [
        {
            "reason": "invalid_json",
            "source": "agency_id=1/dt=2024-01-08/p.ndjson",
            "raw": "{",
            "run_id": "r1",
        }
    ]
